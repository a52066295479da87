// The playground page: two panes over one conversation of the simulated
// platform, plus the bridge's timeline. State comes from the server as whole
// snapshots over Server-Sent Events; the page only renders them. All text
// goes in with textContent, never innerHTML.
"use strict";

const $ = (id) => document.getElementById(id);
const AMR = { pwd: "password", otp: "one-time code", hwk: "security key", user: "user presence", mfa: "multi-factor", sms: "SMS code", face: "face", fpt: "fingerprint" };
let conv = null;
let stream = null;
let last = null;

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: { "Content-Type": "application/json", "X-Playground": "1" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok && res.status !== 204) {
    let msg = "HTTP " + res.status;
    try { msg = (await res.json()).error || msg; } catch (_) { /* not JSON */ }
    throw new Error(msg);
  }
  return res.status === 204 ? null : res.json();
}

function showError(err) {
  const el = $("error");
  el.textContent = err ? String(err.message || err) : "";
  el.hidden = !err;
}

function utc(iso) {
  return iso ? iso.replace("T", " ").slice(0, 19) + " UTC" : "";
}

function clock(iso) {
  const d = new Date(iso);
  const two = (n) => String(n).padStart(2, "0");
  return two(d.getHours()) + ":" + two(d.getMinutes()) + ":" + two(d.getSeconds());
}

// linkify appends text to el with http(s) URLs as links that open a new tab.
function linkify(el, text) {
  const parts = text.split(/(https?:\/\/[^\s]+)/g);
  parts.forEach((p, i) => {
    if (i % 2 === 1) {
      const a = document.createElement("a");
      a.href = p;
      a.textContent = p;
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      el.appendChild(a);
    } else if (p) {
      el.appendChild(document.createTextNode(p));
    }
  });
}

function messageItem(m, who, mine) {
  const li = document.createElement("li");
  li.className = "msg " + m.from + (m.kind !== "text" ? " " + m.kind : "") + (mine ? " mine" : "");
  li.dataset.seq = m.seq;
  li.dataset.key = m.seq + "|" + who;
  li.dataset.from = m.from;
  li.dataset.kind = m.kind;
  const w = document.createElement("span");
  w.className = "who";
  w.textContent = who + " · " + clock(m.at);
  li.appendChild(w);
  const body = document.createElement("span");
  body.className = "text";
  linkify(body, m.text);
  li.appendChild(body);
  return li;
}

// fill shows items in list. When the list on screen is a prefix of the new
// one (the usual case: a message arrived), only the new items are appended,
// so a screen reader announces just those.
function fill(list, items) {
  const stick = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const old = list.children;
  const prefix = old.length <= items.length && [...old].every((el, i) => el.dataset.key === items[i].dataset.key);
  if (prefix) {
    list.append(...items.slice(old.length));
  } else {
    list.replaceChildren(...items);
  }
  if (stick) list.scrollTop = list.scrollHeight;
}

function render(s) {
  if (last && last.conversation.id === s.conversation.id && s.version < last.version) return;
  last = s;
  const c = s.conversation;
  c.messages = c.messages || [];
  s.timeline = s.timeline || [];
  const id = c.identity;
  const name = id && id.name ? id.name : "verified customer";

  fill($("consumer-messages"), c.messages.filter((m) => m.audience === "all").map((m) => {
    const who = m.from === "consumer" ? "You" : m.from === "agent" ? "Agent" : "Automated message";
    return messageItem(m, who, m.from === "consumer");
  }));
  fill($("agent-messages"), c.messages.map((m) => {
    let who = "Automated message to the consumer";
    if (m.from === "consumer") who = c.stepped_up ? name + " (verified)" : "Visitor (anonymous)";
    else if (m.kind === "command") who = "You · command to the bridge";
    else if (m.from === "agent") who = "You";
    else if (m.kind === "note") who = "Bridge · agent-only note";
    return messageItem(m, who, m.from === "agent");
  }));

  $("consumer").classList.toggle("verified", c.stepped_up);
  $("consumer-status").textContent = c.stepped_up ? "✓ Verified as " + name + ". Your chat continues." : "You are chatting anonymously.";

  $("agent").classList.toggle("stepped-up", c.stepped_up);
  $("agent-badge").hidden = !c.stepped_up;
  $("agent-visitor").textContent = c.stepped_up ? name : "Anonymous visitor";
  $("bridge-state").textContent = c.state.replace("_", " ");
  $("bridge-state").dataset.state = c.state;
  const note = $("agent-notification");
  note.hidden = !c.stepped_up;
  note.replaceChildren();
  if (c.stepped_up) {
    const title = document.createElement("strong");
    title.textContent = "Conversation stepped up";
    const body = document.createElement("span");
    body.textContent = c.notice || name;
    note.append(title, document.createElement("br"), body);
  }

  $("agent-identity").hidden = !id;
  if (id) {
    const claims = id.claims || {};
    $("id-name").textContent = id.name || "—";
    $("id-customer").textContent = claims.customer_id || "—";
    $("id-email").textContent = id.email ? id.email + (id.email_verified ? " (verified)" : "") : "—";
    $("id-provider").textContent = id.provider + " · " + id.issuer;
    const how = (id.amr || []).map((a) => AMR[a] || a).join(" + ") || "unspecified";
    $("id-how").textContent = how + (id.acr ? " · level " + id.acr : "") + " · OpenID Connect, confirm code typed in this chat";
    $("id-auth-time").textContent = utc(id.auth_time) || "—";
    $("id-verified-at").textContent = utc(id.verified_at);
    $("id-subject").textContent = id.subject;
  }

  fill($("timeline-list"), s.timeline.map((e) => {
    const li = document.createElement("li");
    li.className = "event " + e.level;
    li.dataset.step = e.step;
    li.dataset.key = String(e.seq);
    const t = document.createElement("span");
    t.className = "time";
    t.textContent = clock(e.at);
    const step = document.createElement("span");
    step.className = "step";
    const actor = document.createElement("span");
    actor.className = "actor";
    actor.textContent = e.actor;
    step.append(actor, document.createElement("br"), e.step);
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = e.text;
    li.append(t, step, text);
    return li;
  }));

  $("skip").hidden = !s.time_controls;
  $("clock").textContent = s.clock_offset_minutes ? "Demo clock: +" + s.clock_offset_minutes + " min" : "";
  document.body.dataset.conversation = c.id;
  document.body.dataset.state = c.state;
}

function subscribe(id) {
  if (stream) stream.close();
  conv = id;
  stream = new EventSource("/api/conversations/" + encodeURIComponent(id) + "/events");
  stream.onmessage = (e) => { showError(null); render(JSON.parse(e.data)); };
  stream.onerror = () => {
    // EventSource reconnects by itself; a conversation the server no
    // longer knows (restarted demo) gets a fresh one.
    fetch("/api/conversations/" + encodeURIComponent(id)).then((r) => {
      if (r.status === 404 && conv === id) start(true);
    }).catch(() => showError(new Error("The demo is not reachable. Is `stepup-bridge demo` still running?")));
  };
}

async function start(fresh) {
  const params = new URLSearchParams(location.search);
  let id = fresh ? null : params.get("c");
  if (!id) {
    const s = await api("POST", "/api/conversations");
    id = s.conversation.id;
    history.replaceState(null, "", "/?c=" + encodeURIComponent(id));
    render(s);
  }
  subscribe(id);
}

function send(from, input) {
  const text = input.value.trim();
  if (!text || !conv) return;
  input.value = "";
  api("POST", "/api/conversations/" + encodeURIComponent(conv) + "/messages", { from, text }).then(render, showError);
}

document.addEventListener("DOMContentLoaded", () => {
  $("consumer-form").addEventListener("submit", (e) => { e.preventDefault(); send("consumer", $("consumer-input")); });
  $("agent-form").addEventListener("submit", (e) => { e.preventDefault(); send("agent", $("agent-input")); });
  $("verify").addEventListener("click", () => {
    if (conv) api("POST", "/api/conversations/" + encodeURIComponent(conv) + "/verify").then(render, showError);
  });
  $("skip").addEventListener("click", () => api("POST", "/api/clock/skip", { minutes: 11 }).catch(showError));
  $("new-conversation").addEventListener("click", () => start(true).catch(showError));
  start(false).catch(showError);
});
