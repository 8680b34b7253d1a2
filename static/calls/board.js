// The live call board. It renders the calls the page was served with, then keeps them current
// from the WebSocket. On every (re)connect the server sends a full snapshot, which replaces the
// table, so a board that lost its socket catches up without a reload. Each call carries `ts`,
// the time its snapshot was taken; an older message for a call is ignored, so a late update
// never brings back a state that was already superseded or a call that already ended.
(function () {
  "use strict";
  const cfg = window.BOARD;
  const t = cfg.t;
  const initial = JSON.parse(document.getElementById("board-initial").textContent);
  const departments = initial.departments || {};
  const calls = new Map();   // id -> snapshot
  const ended = new Map();   // id -> ts of the end message (tombstones)
  const rows = document.getElementById("call-rows");
  const empty = document.getElementById("empty");
  const count = document.getElementById("count-live");
  const wsStatus = document.getElementById("ws-status");
  const amiStatus = document.getElementById("ami-status");
  const notice = document.getElementById("notice");
  let bridgeFrom = null;
  let socket = null;
  let retry = 0;

  // For tests and the curious: the current calls, and a way to drop the socket on purpose.
  window.boardState = {
    calls, ended,
    get connected() { return socket !== null && socket.readyState === 1; },
    drop() { if (socket) socket.close(); },
  };

  function csrf() {
    const m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }

  function duration(call) {
    const start = Date.parse(call.answered_at || call.started_at);
    if (!start) return "";
    const s = Math.max(0, Math.floor((Date.now() - start) / 1000));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    const mm = String(m).padStart(2, "0"), ss = String(r).padStart(2, "0");
    return h ? `${h}:${mm}:${ss}` : `${m}:${ss}`;
  }

  const NBSP = "\u00a0";  // keeps "jitter 12 ms" on one line

  function fmt(n, digits, unit) {
    return n === null || n === undefined ? null : `${Number(n).toFixed(digits)}${unit}`;
  }

  // A URI or channel name with break opportunities after "@" and "/".
  function breakable(text) {
    const frag = document.createDocumentFragment();
    for (const part of String(text).split(/(?<=[@/])/)) {
      if (frag.childNodes.length) frag.append(el("wbr"));
      frag.append(part);
    }
    return frag;
  }

  function row(call) {
    const dept = departments[call.department_id];
    const sipBits = [call.sip_codec, fmt(call.sip_packet_loss, 1, "%") && `${t.loss}${NBSP}${fmt(call.sip_packet_loss, 1, "%")}`,
                     fmt(call.sip_jitter_ms, 0, `${NBSP}ms`) && `${t.jitter}${NBSP}${fmt(call.sip_jitter_ms, 0, `${NBSP}ms`)}`].filter(Boolean);
    let app = "—";
    if (call.agent) app = `${t.agent} ${call.agent}`;
    else if (call.agents_ringing && call.agents_ringing.length) app = `${t.agentsRinging}: ${call.agents_ringing.join(", ")}`;
    const actions = el("td", { class: "actions" });
    if (cfg.can.hangup) actions.append(el("button", { class: "danger", "data-action": "hangup", title: t.hangupHint, onclick: () => act("hangup", call) }, t.hangup));
    if (cfg.can.transfer) actions.append(el("button", { "data-action": "transfer", title: t.transferHint, onclick: () => act("transfer", call) }, t.transfer));
    if (cfg.can.attended_transfer) actions.append(el("button", { "data-action": "attended_transfer", title: t.attendedHint, onclick: () => act("attended_transfer", call) }, t.attended));
    if (cfg.can.bridge) actions.append(el("button", { "data-action": "bridge", title: t.bridgeHint, onclick: () => act("bridge", call) }, t.bridge));
    return el("tr", { "data-call": call.id, "data-state": call.state },
      el("td", { class: "caller" }, call.caller_number || "—", call.caller_name ? el("span", { class: "name" }, call.caller_name) : null),
      el("td", { class: "dialled" }, breakable(call.dialed || "—"), dept ? el("span", { class: "sub" }, dept) : null),
      el("td", {}, el("span", { class: `state state-${call.state}` }, t[call.state] || call.state)),
      el("td", { class: "num duration" }, duration(call)),
      el("td", { class: "leg" }, breakable((call.channels && call.channels[0]) || call.sip_channel || "—"),
         sipBits.length ? el("span", { class: "sub" }, sipBits.join(" · ")) : null),
      el("td", { class: "leg" }, app, call.app_state ? el("span", { class: "sub" }, t.appStates[call.app_state] || call.app_state) : null),
      actions);
  }

  function render() {
    const sorted = [...calls.values()].sort((a, b) => (a.started_at || "").localeCompare(b.started_at || ""));
    rows.replaceChildren(...sorted.map(row));
    empty.hidden = sorted.length > 0;
    count.textContent = String(sorted.length);
  }

  function apply(kind, call) {
    const known = calls.get(call.id);
    if (known && known.ts > call.ts) return;
    const tomb = ended.get(call.id);
    if (tomb !== undefined && tomb >= call.ts) return;
    if (kind === "end" || call.state === "ended") {
      calls.delete(call.id);
      ended.set(call.id, call.ts);
    } else {
      calls.set(call.id, call);
    }
    render();
  }

  function snapshot(msg) {
    // The database's view replaces ours: calls that ended while we were away disappear.
    const fresh = new Map();
    for (const call of msg.calls) {
      const known = calls.get(call.id);
      fresh.set(call.id, known && known.ts > call.ts ? known : call);
    }
    calls.clear();
    for (const [id, call] of fresh) {
      const tomb = ended.get(id);
      if (tomb === undefined || tomb < call.ts) calls.set(id, call);
    }
    render();
    if (msg.ami && msg.ami.length === 0 && msg.calls !== initial.calls) showAmi({ pbx: "", listener: false, none: true });
    for (const status of msg.ami || []) showAmi(status);
  }

  function showAmi(s) {
    let state = "none", label = s.none ? t.noPbx : t.amiNone;
    if (s.listener) {
      state = s.connected ? "up" : "down";
      label = s.connected ? t.amiUp : t.amiDown;
      if (s.connected && s.latency_ms !== null && s.latency_ms !== undefined) label += ` · ${Math.round(s.latency_ms)} ms`;
      if (s.last_event) label += ` · ${t.lastEvent}: ${s.last_event}`;
    }
    amiStatus.dataset.state = state;
    amiStatus.querySelector(".label").textContent = `${s.pbx ? s.pbx + ": " : ""}${label}`;
  }

  function say(text, kind) {
    notice.textContent = text;
    notice.className = `notice ${kind || ""}`;
    notice.hidden = false;
  }

  async function post(action, body) {
    const res = await fetch(cfg.actionUrl.replace("ACTION", action), {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf() },
      body: JSON.stringify(body),
    });
    let data = {};
    try { data = await res.json(); } catch (e) { data = { ok: false, error: `HTTP ${res.status}` }; }
    return data;
  }

  async function act(action, call) {
    const body = { call: call.id };
    if (action === "hangup" && !window.confirm(t.confirmHangup)) return;
    if (action === "transfer" || action === "attended_transfer") {
      const exten = window.prompt(t.extPrompt, "");
      if (!exten) return;
      body.exten = exten.trim();
    }
    if (action === "bridge") {
      if (bridgeFrom === null || bridgeFrom === call.id) { bridgeFrom = call.id; say(t.bridgePrompt); return; }
      body.call = bridgeFrom; body.other = call.id; bridgeFrom = null;
    }
    const data = await post(action, body);
    const label = { hangup: t.hangup, transfer: t.transfer, attended_transfer: t.attended, bridge: t.bridge }[action];
    say(data.ok ? `${t.done}: ${label || action}` : `${t.failed}: ${data.error}`, data.ok ? "ok" : "error");
  }

  const originate = document.getElementById("originate");
  if (originate) {
    originate.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = new FormData(originate);
      say(t.originating);
      const data = await post("originate", Object.fromEntries(f.entries()));
      say(data.ok ? `${t.done}: ${data.result && data.result.reason_text || ""}` : `${t.failed}: ${data.error}`, data.ok ? "ok" : "error");
    });
  }

  function connect() {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${proto}://${location.host}${cfg.wsPath}`);
    wsStatus.dataset.state = "connecting";
    socket.onopen = () => { retry = 0; wsStatus.dataset.state = "up"; wsStatus.textContent = t.connected; };
    socket.onmessage = (ev) => {
      const msg = JSON.parse(ev.data);
      if (msg.type === "snapshot") snapshot(msg);
      else if (msg.type === "call") apply(msg.kind, msg.call);
      else if (msg.type === "ami") showAmi(msg.status);
    };
    socket.onclose = () => {
      wsStatus.dataset.state = "down";
      wsStatus.textContent = t.reconnecting;
      retry = Math.min(retry + 1, 6);
      setTimeout(connect, 250 * 2 ** retry);
    };
  }

  snapshot({ calls: initial.calls, ami: [] });
  connect();
  setInterval(() => {
    for (const td of rows.querySelectorAll("tr[data-call]")) {
      const call = calls.get(Number(td.dataset.call));
      if (call) td.querySelector(".duration").textContent = duration(call);
    }
  }, 1000);
})();
