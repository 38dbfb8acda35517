// Support pages: the live chat panel, the moderators' queue and the topic room.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const chat = document.getElementById("chat");
  const queue = document.getElementById("queue");
  const online = document.getElementById("moderators-online");
  if (!chat && !queue && !online) return;
  const socket = new window.ChatSocket();
  const connection = document.getElementById("connection");
  socket.on((frame) => {
    if (frame.type === "connection" && connection) {
      connection.textContent = frame.state === "online" ? "" : "Reconnecting…";
    }
    if (frame.type === "presence" && online) {
      const n = frame.moderators_online;
      online.textContent = n ? `${n} moderator${n === 1 ? "" : "s"} online`
        : "No moderator is online right now; you can still start and wait.";
    }
  });
  if (chat) bindChat(chat, socket);
  if (queue) bindQueue(queue, socket);
});

function bindChat(chat, socket) {
  const id = Number(chat.dataset.conversationId);
  const me = Number(chat.dataset.userId);
  const list = document.getElementById("messages");
  const typing = document.getElementById("typing");
  const status = document.getElementById("chat-status");
  const position = document.getElementById("queue-position");
  const composer = document.getElementById("composer");
  const typists = new Map();
  let leaving = false;   // a form (end, rating, transfer) is taking this page elsewhere
  document.addEventListener("submit", (event) => {
    if (event.target !== composer) leaving = true;
  });

  const showTyping = () => {
    const names = [...typists.values()];
    typing.textContent = names.length ? `${names.join(", ")} ${names.length === 1 ? "is" : "are"} typing…` : "";
  };

  const addMessage = (frame) => {
    if (list.querySelector(`[data-message-id="${frame.message_id}"]`)) return;
    const item = document.createElement("li");
    item.className = "message" + (frame.sender_id === me ? " mine" : "");
    item.dataset.messageId = frame.message_id;
    item.dataset.seq = frame.seq;
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = frame.sender_id === me ? "You" : frame.sender_name;
    const body = document.createElement("span");
    body.className = "body";
    body.textContent = frame.body;
    item.append(who, body);
    list.append(item);
    item.scrollIntoView({ block: "end" });
    typists.delete(frame.sender_id);
    showTyping();
  };

  socket.on((frame) => {
    if (frame.conversation_id !== id) return;
    switch (frame.type) {
      case "chat_message":
      case "private_message":
        addMessage(frame);
        break;
      case "typing_start":
        typists.set(frame.user_id, frame.name);
        showTyping();
        break;
      case "typing_stop":
        typists.delete(frame.user_id);
        showTyping();
        break;
      case "queue_position":
        if (position) {
          position.textContent = `You are number ${frame.position} in the queue; estimated wait about ${Math.max(1, Math.ceil(frame.estimated_wait_seconds / 60))} min.`;
        }
        break;
      case "conversation_updated":
        if (frame.status !== chat.dataset.status && !leaving) {
          chat.dataset.status = frame.status;
          status.textContent = frame.status;
          // Claimed, ended or handed over: the page's forms change, so show the fresh page.
          if (frame.status === "active" && frame.assignee_name) {
            if (position) position.textContent = `${frame.assignee_name} joined the conversation.`;
            setTimeout(() => location.reload(), 600);
          } else {
            location.reload();
          }
        }
        break;
      case "error":
        if (frame.client_id) window.showError(frame.message);
        break;
    }
  });
  socket.subscribe(id, Number(chat.dataset.lastSeq));

  if (composer) window.bindComposer(composer, socket, id);
}


function bindQueue(table, socket) {
  const csrf = table.dataset.csrf;
  const pending = document.getElementById("pending-rows");
  const active = document.getElementById("active-rows");
  const cell = (text) => {
    const td = document.createElement("td");
    td.textContent = text ?? "";
    return td;
  };
  const empty = (columns, text) => {
    const row = document.createElement("tr");
    row.className = "empty";
    const td = cell(text);
    td.colSpan = columns;
    td.className = "muted";
    row.append(td);
    return row;
  };
  socket.on((frame) => {
    if (frame.type !== "queue_updated") return;
    pending.replaceChildren(...frame.pending.map((c) => {
      const row = document.createElement("tr");
      row.dataset.conversationId = c.id;
      const form = document.createElement("form");
      form.method = "post";
      form.action = `/moderate/${c.id}/claim`;
      form.className = "inline";
      const token = document.createElement("input");
      token.type = "hidden";
      token.name = "csrf_token";
      token.value = csrf;
      const button = document.createElement("button");
      button.type = "submit";
      button.textContent = "Claim";
      form.append(token, button);
      const action = document.createElement("td");
      action.append(form);
      row.append(cell(c.topic), cell(c.owner), cell(c.channel),
        cell(new Date(c.created_at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })), action);
      return row;
    }));
    if (!frame.pending.length) pending.append(empty(5, "Nobody is waiting."));
    active.replaceChildren(...frame.active.map((c) => {
      const row = document.createElement("tr");
      row.dataset.conversationId = c.id;
      const link = document.createElement("a");
      link.href = `/support/conversations/${c.id}`;
      link.textContent = "Open";
      const open = document.createElement("td");
      open.append(link);
      row.append(cell(c.topic), cell(c.owner), cell(c.assignee), open);
      return row;
    }));
    if (!frame.active.length) active.append(empty(4, "None."));
  });
  socket.subscribeQueue();
}
