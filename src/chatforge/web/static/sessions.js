// Live session rooms: messages, private messages, reactions, hands, participants, moderation.
// Every change arrives as an event over window.ChatSocket; the DOM is built with textContent.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const room = document.getElementById("room");
  if (room) bindRoom(room, new window.ChatSocket());
});

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function bindRoom(room, socket) {
  const id = Number(room.dataset.conversationId);
  const me = Number(room.dataset.userId);
  const instructor = room.dataset.instructor === "1";
  const instructorIds = new Set(room.dataset.instructorIds.split(",").filter(Boolean).map(Number));
  const emoji = room.dataset.emoji.split(" ");
  const list = document.getElementById("messages");
  const hands = document.getElementById("hands");
  const participants = document.getElementById("participants");
  const typing = document.getElementById("typing");
  const composer = document.getElementById("composer");
  const input = document.getElementById("body");
  const recipient = document.getElementById("recipient");
  const sendButton = document.getElementById("send");
  const notice = document.getElementById("muted-notice");
  const handButton = document.getElementById("hand");
  const connection = document.getElementById("connection");
  const names = new Map();
  const typists = new Map();
  let unmuteTimer = null;

  for (const li of participants.querySelectorAll("li")) {
    names.set(Number(li.dataset.userId), li.querySelector(".name").textContent);
  }
  const action = (frame) => socket.raw({ conversation_id: id, ...frame });

  // -- messages -------------------------------------------------------------------------
  const reactionBar = () => {
    const bar = el("span", "reactions");
    for (const e of emoji) {
      const button = el("button", "reaction", e + " ");
      button.type = "button";
      button.dataset.emoji = e;
      button.setAttribute("aria-label", "React " + e);
      button.append(el("span", "count", ""));
      bar.append(button);
    }
    return bar;
  };

  const addMessage = (frame) => {
    if (list.querySelector(`[data-message-id="${frame.message_id}"]`)) return;
    const item = el("li", "message");
    if (frame.sender_id === me) item.classList.add("mine");
    item.dataset.messageId = frame.message_id;
    item.dataset.seq = frame.seq;
    let who = frame.sender_id === me ? "You" : frame.sender_name;
    if (frame.recipient_id) {
      item.classList.add("private");
      const to = frame.recipient_id === me ? "you" : (names.get(frame.recipient_id) || "");
      who += ` → ${to} (private)`;
    }
    item.append(el("span", "who", who), el("span", "body", frame.body), reactionBar());
    if (instructor) {
      const del = el("button", "link delete", "Delete");
      del.type = "button";
      del.dataset.testid = "delete";
      item.append(del);
    }
    list.append(item);
    if (frame.deleted) markDeleted(frame.message_id);
    item.scrollIntoView({ block: "end" });
    typists.delete(frame.sender_id);
    showTyping();
  };

  const markDeleted = (messageId) => {
    const item = list.querySelector(`[data-message-id="${messageId}"]`);
    if (!item) return;
    item.classList.add("deleted");
    item.querySelector(".body").textContent = "This message was deleted.";
    const del = item.querySelector(".delete");
    if (del) del.remove();
  };

  const setReaction = (frame) => {
    const item = list.querySelector(`[data-message-id="${frame.message_id}"]`);
    if (!item) return;
    const button = item.querySelector(`button.reaction[data-emoji="${frame.emoji}"]`);
    if (!button) return;
    button.querySelector(".count").textContent = frame.count ? String(frame.count) : "";
    const who = new Set((button.title || "").split(", ").filter(Boolean));
    if (frame.type === "reaction_added") who.add(frame.name); else who.delete(frame.name);
    button.title = [...who].join(", ");
    if (frame.user_id === me) button.classList.toggle("on", frame.type === "reaction_added");
  };

  list.addEventListener("click", (event) => {
    const item = event.target.closest("li.message");
    if (!item) return;
    const messageId = Number(item.dataset.messageId);
    const reaction = event.target.closest("button.reaction");
    if (reaction) {
      action({ type: "reaction_added", message_id: messageId, emoji: reaction.dataset.emoji });
    } else if (event.target.closest("button.delete")) {
      if (window.confirm("Delete this message for everyone?")) {
        action({ type: "delete_message", message_id: messageId });
      }
    }
  });

  // -- hands ----------------------------------------------------------------------------
  const setHandButton = (raised) => {
    if (!handButton) return;
    handButton.dataset.raised = raised ? "1" : "0";
    handButton.setAttribute("aria-pressed", raised ? "true" : "false");
    handButton.textContent = raised ? "Lower hand" : "Raise hand";
  };

  const addHand = (frame) => {
    if (hands.querySelector(`[data-user-id="${frame.user_id}"]`)) return;
    const item = el("li");
    item.dataset.userId = frame.user_id;
    item.append(el("span", "name", frame.name));
    if (instructor) {
      for (const [cls, label] of [["acknowledge", "Acknowledge"], ["lower", "Lower"]]) {
        const button = el("button", "link " + cls, label);
        button.type = "button";
        item.append(" ", button);
      }
    }
    hands.append(item);
    if (frame.user_id === me) setHandButton(true);
  };

  const removeHand = (userId) => {
    const item = hands.querySelector(`[data-user-id="${userId}"]`);
    if (item) item.remove();
    if (userId === me) setHandButton(false);
  };

  hands.addEventListener("click", (event) => {
    const item = event.target.closest("li");
    if (!item) return;
    const userId = Number(item.dataset.userId);
    if (event.target.closest("button.acknowledge")) action({ type: "acknowledge_hand", user_id: userId });
    if (event.target.closest("button.lower")) action({ type: "hand_lowered", user_id: userId });
  });

  if (handButton) {
    handButton.addEventListener("click", () => {
      action({ type: handButton.dataset.raised === "1" ? "hand_lowered" : "hand_raised" });
    });
  }

  // -- participants -----------------------------------------------------------------------
  const addOption = (select, userId, label) => {
    if (!select || select.querySelector(`option[value="${userId}"]`)) return;
    const option = el("option", "", label);
    option.value = String(userId);
    select.append(option);
  };

  const joined = (frame) => {
    names.set(frame.user_id, frame.name);
    if (frame.role === "instructor") instructorIds.add(frame.user_id);
    if (!participants.querySelector(`[data-user-id="${frame.user_id}"]`)) {
      const item = el("li");
      item.dataset.userId = frame.user_id;
      item.dataset.role = frame.role;
      item.append(el("span", "name", frame.name));
      if (frame.role === "instructor") item.append(" ", el("span", "badge", "instructor"));
      participants.append(item);
    }
    if (frame.user_id === me) return;
    if (instructor && frame.role !== "instructor") {
      addOption(recipient, frame.user_id, `${frame.name} (private)`);
      addOption(document.getElementById("mute-user"), frame.user_id, frame.name);
    } else if (!instructor && frame.role === "instructor") {
      addOption(recipient, frame.user_id, `${frame.name} (private)`);
    }
  };

  const left = (frame) => {
    const item = participants.querySelector(`[data-user-id="${frame.user_id}"]`);
    if (item) item.remove();
    removeHand(frame.user_id);
  };

  // -- mutes ----------------------------------------------------------------------------
  const setMuted = (text, until) => {
    notice.hidden = !text;
    notice.textContent = text || "";
    for (const control of [input, recipient, sendButton]) control.disabled = Boolean(text);
    if (unmuteTimer) clearTimeout(unmuteTimer);
    unmuteTimer = null;
    if (text && until) {
      // The server lifts nothing: a mute simply ends at its time, and so does this notice.
      unmuteTimer = setTimeout(() => setMuted(""), Math.max(0, Date.parse(until) - Date.now()));
    }
  };

  const muteText = (frame) => {
    const span = frame.until
      ? `until ${new Date(frame.until).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}`
      : "until an instructor unmutes you";
    return `You are muted ${span}.` + (frame.reason ? ` Reason: ${frame.reason}` : "");
  };

  if (!notice.hidden && notice.dataset.until) setMuted(notice.textContent, notice.dataset.until);

  if (instructor) {
    const target = () => Number(document.getElementById("mute-user").value);
    document.getElementById("mute").addEventListener("click", () => {
      const minutes = document.getElementById("mute-minutes").value;
      const frame = { type: "mute_user", user_id: target(), reason: document.getElementById("mute-reason").value };
      if (minutes) frame.duration_minutes = Number(minutes);
      if (frame.user_id) action(frame);
    });
    document.getElementById("unmute").addEventListener("click", () => {
      if (target()) action({ type: "unmute_user", user_id: target() });
    });
    document.getElementById("slow").addEventListener("click", () => {
      action({ type: "set_slow_mode", seconds: Number(document.getElementById("slow-seconds").value || 0) });
    });
  }

  // -- typing -----------------------------------------------------------------------------
  const showTyping = () => {
    const who = [...typists.values()];
    typing.textContent = who.length ? `${who.join(", ")} ${who.length === 1 ? "is" : "are"} typing…` : "";
  };

  // -- the event stream ------------------------------------------------------------------
  socket.on((frame) => {
    if (frame.type === "connection") {
      connection.textContent = frame.state === "online" ? "" : "Reconnecting…";
      return;
    }
    if (frame.conversation_id !== id) return;
    switch (frame.type) {
      case "chat_message":
      case "private_message": addMessage(frame); break;
      case "message_deleted": markDeleted(frame.message_id); break;
      case "reaction_added":
      case "reaction_removed": setReaction(frame); break;
      case "hand_raised": addHand(frame); break;
      case "hand_lowered": removeHand(frame.user_id); break;
      case "hand_acknowledged": {
        const item = hands.querySelector(`[data-user-id="${frame.user_id}"]`);
        if (item) item.classList.add("acknowledged");
        break;
      }
      case "user_joined": joined(frame); break;
      case "user_left": left(frame); break;
      case "user_muted": if (frame.user_id === me) setMuted(muteText(frame), frame.until); break;
      case "user_unmuted": if (frame.user_id === me) setMuted(""); break;
      case "slow_mode_changed":
        document.getElementById("slow-mode").textContent =
          frame.seconds ? `Slow mode: one message every ${frame.seconds} s.` : "";
        break;
      case "typing_start": typists.set(frame.user_id, frame.name); showTyping(); break;
      case "typing_stop": typists.delete(frame.user_id); showTyping(); break;
      case "error":
        if (frame.code === "muted") setMuted(frame.message, null);
        else window.showError(frame.message);
        break;
    }
  });
  socket.subscribe(id, Number(room.dataset.lastSeq));

  // -- sending ----------------------------------------------------------------------------
  window.bindComposer(composer, socket, id, () =>
    recipient.value ? { recipient_id: Number(recipient.value) } : {});
}

