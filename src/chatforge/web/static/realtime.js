// chatforge real-time client: one WebSocket per page, reconnecting with backoff.
//
// It remembers the last `seq` seen per conversation and resumes from it after a reconnect, so
// nothing is missed or shown twice; messages not yet acknowledged are sent again with the same
// client_id, which the server turns into the original ack instead of a second message.
"use strict";

class ChatSocket {
  constructor() {
    this.cursors = new Map();   // conversation id -> last seq seen
    this.unacked = new Map();   // client_id -> frame
    this.listeners = new Set();
    this.wantQueue = false;
    this.attempt = 0;
    this.ws = null;
    this.connect();
  }

  on(listener) { this.listeners.add(listener); }

  emit(frame) { for (const listener of this.listeners) listener(frame); }

  status(state) { this.emit({ type: "connection", state }); }

  connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const ws = new WebSocket(scheme + location.host + "/ws");
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this.status("online");
      for (const [id, seq] of this.cursors) {
        this.raw({ type: "subscribe", conversation_id: id, after_seq: seq });
      }
      if (this.wantQueue) this.raw({ type: "subscribe_queue" });
      for (const frame of this.unacked.values()) this.raw(frame);
    };
    ws.onmessage = (event) => this.receive(JSON.parse(event.data));
    ws.onclose = () => {
      this.status("offline");
      // Exponential backoff with jitter, capped at 30 s, so a restarted server is not stampeded.
      const delay = Math.min(30000, 500 * 2 ** this.attempt) * (0.5 + Math.random() / 2);
      this.attempt += 1;
      setTimeout(() => this.connect(), delay);
    };
  }

  receive(frame) {
    const id = frame.conversation_id;
    if (typeof frame.seq === "number" && typeof id === "number") {
      if (frame.seq <= (this.cursors.get(id) ?? 0)) return;   // already seen
      this.cursors.set(id, frame.seq);
    }
    if ((frame.type === "ack" || frame.type === "bot_ack" || frame.type === "error") && frame.client_id) {
      this.unacked.delete(frame.client_id);
    }
    if (frame.type === "resync_required") {
      this.resync(id, frame.last_seq);
      return;
    }
    this.emit(frame);
  }

  raw(frame) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame));
  }

  subscribe(conversationId, afterSeq) {
    this.cursors.set(conversationId, afterSeq);
    this.raw({ type: "subscribe", conversation_id: conversationId, after_seq: afterSeq });
  }

  subscribeQueue() {
    this.wantQueue = true;
    this.raw({ type: "subscribe_queue" });
  }

  send(conversationId, body, extra = {}) {
    const clientId = newClientId();
    const frame = { type: "chat_message", conversation_id: conversationId, body, client_id: clientId, ...extra };
    this.unacked.set(clientId, frame);
    this.raw(frame);
    return clientId;
  }

  // A message to the web channel's bot (the chat widget); answered by `bot_ack`.
  sendToBot(body) {
    const clientId = newClientId();
    const frame = { type: "bot_message", body, client_id: clientId };
    this.unacked.set(clientId, frame);
    this.raw(frame);
    return clientId;
  }

  typing(conversationId, active) {
    this.raw({ type: active ? "typing_start" : "typing_stop", conversation_id: conversationId });
  }

  // Too much was missed for a replay: page through the history over REST, then go live again.
  async resync(conversationId, lastSeq) {
    let after = this.cursors.get(conversationId) ?? 0;
    while (after < lastSeq) {
      const response = await fetch(`/api/conversations/${conversationId}/events?after_seq=${after}&limit=1000`,
        { credentials: "same-origin" });
      if (!response.ok) break;
      const page = await response.json();
      for (const frame of page.events) this.receive(frame);
      if (page.next_after_seq <= after) break;
      after = page.next_after_seq;
    }
    this.cursors.set(conversationId, Math.max(after, this.cursors.get(conversationId) ?? 0));
    this.raw({ type: "subscribe", conversation_id: conversationId, after_seq: this.cursors.get(conversationId) });
  }
}

function newClientId() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  return Date.now().toString(36) + Math.random().toString(36).slice(2);
}

// A message form: Enter sends (Shift+Enter breaks the line), typing is signalled and renewed
// well inside the server's 5 s expiry. `extra()` adds fields to each message (a recipient).
function bindComposer(composer, socket, conversationId, extra = () => ({})) {
  const input = composer.querySelector("textarea");
  let typingSince = 0;
  composer.addEventListener("submit", (event) => {
    event.preventDefault();
    const body = input.value;
    if (!body.trim()) return;
    socket.send(conversationId, body, extra());
    input.value = "";
    socket.typing(conversationId, false);
    typingSince = 0;
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      composer.requestSubmit();
    }
  });
  input.addEventListener("input", () => {
    const now = Date.now();
    if (now - typingSince > 2000) {
      socket.typing(conversationId, true);
      typingSince = now;
    }
  });
}

// An error for the person at the keyboard, announced by screen readers.
function showError(message) {
  const item = document.createElement("p");
  item.className = "flash flash-error";
  item.setAttribute("role", "alert");
  item.textContent = message;
  document.querySelector(".flashes").append(item);
}

window.ChatSocket = ChatSocket;
window.bindComposer = bindComposer;
window.showError = showError;
