// The web chat widget: talk to the web channel's bot over the WebSocket.
//
// Messages go out as `bot_message` frames; the answer (`bot_ack`) names the user's bot
// conversation, whose events (the user's message and the bot's replies, each with its seq) the
// page subscribes to and shows as they arrive. A hand-off's notice links to the support chat.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const chat = document.getElementById("bot-chat");
  if (!chat) return;
  const me = Number(chat.dataset.userId);
  const bot = chat.dataset.bot;
  const list = document.getElementById("messages");
  const handoff = document.getElementById("handoff");
  const connection = document.getElementById("connection");
  const composer = document.getElementById("composer");
  const input = composer.querySelector("textarea");
  const socket = new window.ChatSocket();
  let conversationId = Number(chat.dataset.conversationId) || null;

  const addMessage = (frame) => {
    if (list.querySelector(`[data-message-id="${frame.message_id}"]`)) return;
    list.querySelector(".empty")?.remove();
    const item = document.createElement("li");
    item.className = "message" + (frame.sender_id === me ? " mine" : "");
    item.dataset.messageId = frame.message_id;
    item.dataset.seq = frame.seq;
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = frame.sender_id === me ? "You" : (frame.sender_name || bot);
    const body = document.createElement("span");
    body.className = "body";
    body.textContent = frame.body;
    item.append(who, body);
    list.append(item);
    item.scrollIntoView({ block: "end" });
  };

  const showHandoff = (notice, supportId) => {
    const text = document.createElement("span");
    text.textContent = notice + " ";
    const parts = [text];
    if (supportId) {
      const link = document.createElement("a");
      link.href = `/support/conversations/${supportId}`;
      link.textContent = "Go to the conversation";
      parts.push(link);
    }
    handoff.replaceChildren(...parts);
    handoff.hidden = false;
  };

  socket.on((frame) => {
    switch (frame.type) {
      case "connection":
        connection.textContent = frame.state === "online" ? "" : "Reconnecting…";
        break;
      case "bot_ack":
        if (frame.conversation_id && frame.conversation_id !== conversationId) {
          // The message opened a new chat (the first, or the first since a quiet one ended):
          // follow it from its start.
          conversationId = frame.conversation_id;
          socket.subscribe(conversationId, 0);
        }
        if (frame.handoff_notice) showHandoff(frame.handoff_notice, frame.support_conversation_id);
        break;
      case "chat_message":
        if (frame.conversation_id === conversationId) addMessage(frame);
        break;
      case "error":
        if (frame.client_id) {
          const box = document.querySelector(".flashes");
          const item = document.createElement("p");
          item.className = "flash flash-error";
          item.setAttribute("role", "alert");
          item.textContent = frame.message;
          box.append(item);
        }
        break;
    }
  });
  if (conversationId) socket.subscribe(conversationId, Number(chat.dataset.lastSeq));

  composer.addEventListener("submit", (event) => {
    event.preventDefault();
    const body = input.value;
    if (!body.trim()) return;
    socket.sendToBot(body);
    input.value = "";
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      composer.requestSubmit();
    }
  });
});
