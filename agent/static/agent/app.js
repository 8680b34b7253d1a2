/*
 * ccbridge agent app: the official ConnectyCube JS SDK (window.ConnectyCube) in a plain page.
 *
 * The server renders the SDK configuration (#agent-config) and the translated strings
 * (#agent-strings). One call at a time; a second incoming call is rejected as busy.
 *
 * Test and integration hooks, on window.agentApp:
 *   state                  phase (offline|idle|ringing|dialing|connecting|connected|ended),
 *                          reason, error, userId, peerId, peerName, sessionId, muted, dtmf,
 *                          dtmfReceived (digits the peer sent: the bridge relays the phone's)
 *   history                every phase change, for tests
 *   login(l, p), logout(), call(userId), accept(), reject(), hangup(), toggleMute(), pressKey(d)
 *   dominantFrequency()    the loudest frequency (Hz) of the remote audio, or null when silent
 *   dtmfHandler            async (digit, {session, peerId}) => void. The default sends the digit
 *                          to the peer as a system message {type: "dtmf", digit, sessionID};
 *                          the inbound-call work replaces it when the bridge plays real DTMF.
 *   hold(), transfer(exten) system messages {type: "hold"|"unhold"|"transfer", sessionID, exten}
 *                          to the peer: the bridge puts the phone on hold or transfers it.
 */
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("agent-config").textContent);
  const strings = JSON.parse(document.getElementById("agent-strings").textContent);
  const $ = (id) => document.getElementById(id);

  // Chromium's echo cancellation, noise suppression and gain control fade a steady tone.
  const AUDIO_CONSTRAINTS = { echoCancellation: false, noiseSuppression: false, autoGainControl: false };
  const CONNECTION = { CHECKING: 1, CONNECTED: 2, FAILED: 3, DISCONNECTED: 4, CLOSED: 5, COMPLETED: 6 };

  function t(key, params) {
    let text = strings[key] || key;
    for (const [name, value] of Object.entries(params || {})) {
      text = text.split("{" + name + "}").join(String(value));
    }
    return text;
  }

  /** Return the SDK's error as one readable line ({code, info:{errors}} or an Error). */
  function errorText(err) {
    if (err === null || err === undefined) return "?";
    if (typeof err === "string") return err;
    const flatten = (value) => {
      if (value === null || value === undefined) return "";
      if (typeof value === "string") return value;
      if (Array.isArray(value)) return value.map(flatten).filter(Boolean).join("; ");
      if (typeof value === "object") {
        return Object.entries(value)
          .map(([k, v]) => (k === "base" ? flatten(v) : k + ": " + flatten(v)))
          .join("; ");
      }
      return String(value);
    };
    if (err.info && err.info.errors) return flatten(err.info.errors);
    if (err.info && typeof err.info === "object" && err.info.message) return String(err.info.message);
    if (err.message) {
      if (err.message === "Failed to fetch") return t("errorUnreachable", { url: config.apiUrl });
      return err.message;
    }
    if (err.code) return "HTTP " + err.code;
    return String(err);
  }

  const state = {
    phase: "offline",
    reason: null,
    error: null,
    userId: null,
    login: null,
    fullName: null,
    peerId: null,
    peerName: null,
    sessionId: null,
    direction: null,
    muted: false,
    dtmf: "",
    dtmfReceived: "",
    held: false,
    connectedAt: null,
  };
  const history = [];
  let session = null; // the current ConnectyCube call session
  let analyser = null;
  let audioContext = null;
  let userNames = {};

  // -- SDK ---------------------------------------------------------------------------------

  const sdk = window.ConnectyCube;
  if (!sdk) {
    showError("login-error", t("errorNoSdk"));
    $("login-button").disabled = true;
    window.agentApp = { state: Object.assign(state, { error: t("errorNoSdk") }), history };
    return;
  }
  const sdkConfig = {
    endpoints: { api_url: config.apiUrl, chat: config.chatDomain, chat_url: config.chatUrl },
    chat: { reconnect: { enable: true, timeInterval: 5 } },
    videochat: { answerTimeInterval: config.answerTimeout },
    debug: { mode: 0 },
  };
  if (Array.isArray(config.iceServers)) sdkConfig.videochat.iceServers = config.iceServers;
  sdk.init({ appId: config.appId, authKey: config.authKey }, sdkConfig);
  const CallType = sdk.videochat ? sdk.videochat.CallType : { VIDEO: 1, AUDIO: 2 };

  // -- state and rendering -----------------------------------------------------------------

  function setPhase(phase, extra) {
    Object.assign(state, extra || {});
    if (phase !== state.phase) history.push({ phase, reason: state.reason, at: Date.now() });
    state.phase = phase;
    render();
  }

  function showError(id, text) {
    const el = $(id);
    el.textContent = text || "";
    el.hidden = !text;
  }

  function render() {
    const online = state.phase !== "offline";
    $("login-panel").hidden = online;
    $("phone-panel").hidden = !online;
    const presence = $("presence");
    presence.textContent = online ? t("online") : t("offline");
    presence.className = "presence " + (online ? "presence-on" : "presence-off");
    if (online) $("whoami").textContent = t("signedInAs", { name: state.fullName || state.login, id: state.userId });

    const panel = $("call-panel");
    panel.dataset.phase = state.phase;
    panel.className = "call-panel call-" + state.phase;
    const name = state.peerName || t("user", { id: state.peerId });
    let title = t("idle");
    let status = t("waiting");
    switch (state.phase) {
      case "ringing":
        title = t("calling", { name });
        status = t("ringing");
        break;
      case "dialing":
        title = t("dialing", { name });
        status = t("ringing");
        break;
      case "connecting":
        title = name;
        status = t("connecting");
        break;
      case "connected":
        title = name;
        status = t("connected") + " · " + elapsed(state.connectedAt);
        break;
      case "ended":
        title = t("ended");
        status = state.reason ? t(state.reason) : "";
        break;
    }
    $("call-title").textContent = title;
    $("call-status").textContent = status;

    const inCall = state.phase === "connecting" || state.phase === "connected";
    $("accept-button").hidden = state.phase !== "ringing";
    $("reject-button").hidden = state.phase !== "ringing";
    $("hangup-button").hidden = !(inCall || state.phase === "dialing");
    $("mute-button").hidden = !inCall;
    $("mute-button").textContent = state.muted ? t("unmute") : t("mute");
    $("mute-button").setAttribute("aria-pressed", String(state.muted));
    $("incall-tools").hidden = !inCall;
    $("hold-button").disabled = state.phase !== "connected";
    $("transfer-button").disabled = state.phase !== "connected";
    $("hold-button").setAttribute("aria-pressed", String(state.held));
    $("dtmf-echo").textContent = [
      state.dtmf ? t("dtmfSent", { digits: state.dtmf }) : "",
      state.dtmfReceived
        ? t("dtmfReceived", { digits: state.dtmfReceived })
        : "",
    ].filter(Boolean).join(" · ");
    // One call at a time: the dialler makes way while a call is on.
    $("dial-form").hidden = Boolean(session);
  }

  function elapsed(since) {
    const seconds = since ? Math.max(0, Math.floor((Date.now() - since) / 1000)) : 0;
    const pad = (n) => String(n).padStart(2, "0");
    const hours = Math.floor(seconds / 3600);
    const clock = pad(Math.floor((seconds % 3600) / 60)) + ":" + pad(seconds % 60);
    return hours ? hours + ":" + clock : clock;
  }

  // The call clock ticks while connected.
  setInterval(() => {
    if (state.phase === "connected") render();
  }, 1000);

  // -- login -------------------------------------------------------------------------------

  async function login(loginName, password) {
    showError("login-error", "");
    $("login-button").disabled = true;
    $("login-button").textContent = t("signingIn");
    try {
      let created;
      try {
        created = await sdk.createSession({ login: loginName, password });
      } catch (err) {
        throw new Error(t("errorLogin", { error: errorText(err) }));
      }
      try {
        await sdk.chat.connect({ userId: created.user_id, password });
      } catch (err) {
        await sdk.destroySession().catch(() => {});
        throw new Error(t("errorChat", { error: errorText(err) }));
      }
      const fullName = (created.user && created.user.full_name) || loginName;
      setPhase("idle", {
        userId: created.user_id, login: loginName, fullName, error: null, reason: null,
      });
      return created.user_id;
    } catch (err) {
      state.error = err.message;
      showError("login-error", err.message);
      throw err;
    } finally {
      $("login-button").disabled = false;
      $("login-button").textContent = $("login-button").dataset.label;
    }
  }

  async function logout() {
    if (session) hangup();
    try {
      sdk.chat.disconnect();
    } catch (err) {
      /* already offline */
    }
    await sdk.destroySession().catch(() => {});
    setPhase("offline", { userId: null, login: null, fullName: null, reason: null, error: null });
  }

  // -- media -------------------------------------------------------------------------------

  function mediaConstraints(callType) {
    // A video call needs a video track back, or the caller's SDK never shows our stream.
    return { audio: AUDIO_CONSTRAINTS, video: callType === CallType.VIDEO };
  }

  function attachRemote(stream) {
    const audio = $("remote-audio");
    // Chromium feeds WebAudio from a remote WebRTC stream only while a media element plays it.
    audio.srcObject = stream;
    audio.play().catch(() => {});
    if (!stream.getAudioTracks().length) return;
    try {
      audioContext = audioContext || new (window.AudioContext || window.webkitAudioContext)();
      audioContext.resume().catch(() => {});
      analyser = audioContext.createAnalyser();
      analyser.fftSize = 8192;
      analyser.smoothingTimeConstant = 0.2;
      audioContext.createMediaStreamSource(stream).connect(analyser);
    } catch (err) {
      console.warn("agent: no analyser for the remote stream", err);
    }
  }

  /** Return the dominant frequency (Hz) of the remote audio, or null when silent. */
  function dominantFrequency() {
    if (!analyser) return null;
    const bins = new Float32Array(analyser.frequencyBinCount);
    analyser.getFloatFrequencyData(bins);
    let best = 1;
    for (let i = 2; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
    if (!(bins[best] > -80)) return null;
    return (best * audioContext.sampleRate) / analyser.fftSize;
  }

  function releaseMedia() {
    const audio = $("remote-audio");
    audio.srcObject = null;
    analyser = null;
  }

  // -- calls -------------------------------------------------------------------------------

  function peerNameOf(userId, userInfo) {
    if (userInfo && userInfo.callerName) return userInfo.callerName;
    return config.departments[String(userId)] || userNames[userId] || null;
  }

  async function lookUpName(userId) {
    // Best effort: the caller's full name from the REST API when no department name is known.
    try {
      const result = await sdk.users.getV2({ id: { in: [userId] } });
      const user = result && result.items && result.items[0];
      if (user && (user.full_name || user.login)) {
        userNames[userId] = user.full_name || user.login;
        if (state.peerId === userId && !state.peerName) {
          state.peerName = userNames[userId];
          render();
        }
      }
    } catch (err) {
      /* the page still shows "User <id>" */
    }
  }

  function endCall(reason) {
    if (!session) return;
    session = null;
    releaseMedia();
    setPhase("ended", { reason, muted: false });
  }

  function isCurrent(s) {
    return session !== null && s && s.ID === session.ID;
  }

  async function call(userId) {
    userId = parseInt(userId, 10);
    if (!userId) {
      showError("call-error", t("errorUserId"));
      throw new Error(t("errorUserId"));
    }
    if (session) throw new Error(t("reasonBusy"));
    showError("call-error", "");
    const s = sdk.videochat.createNewSession([userId], CallType.AUDIO, {});
    session = s;
    setPhase("dialing", {
      peerId: userId, peerName: peerNameOf(userId), sessionId: s.ID, direction: "outgoing",
      reason: null, error: null, dtmf: "", dtmfReceived: "", held: false, connectedAt: null,
    });
    if (!state.peerName) lookUpName(userId);
    try {
      await s.getUserMedia(mediaConstraints(CallType.AUDIO));
    } catch (err) {
      failCall(s, t("errorMedia", { error: errorText(err) }));
      throw err;
    }
    if (!isCurrent(s)) return s.ID;
    s.call({ callerName: state.fullName || state.login });
    return s.ID;
  }

  function failCall(s, message) {
    state.error = message;
    showError("call-error", message);
    if (isCurrent(s)) endCall("reasonFailed");
    try {
      s.stop({ reason: "error" });
    } catch (err) {
      /* never started */
    }
  }

  async function accept() {
    const s = session;
    if (!s || state.phase !== "ringing") return;
    setPhase("connecting");
    try {
      await s.getUserMedia(mediaConstraints(s.callType));
    } catch (err) {
      failCall(s, t("errorMedia", { error: errorText(err) }));
      return;
    }
    if (isCurrent(s)) s.accept({});
  }

  function reject() {
    const s = session;
    if (!s || state.phase !== "ringing") return;
    // End first: the SDK fires onSessionCloseListener from inside reject() and stop().
    endCall("reasonRejectedLocal");
    s.reject({});
  }

  function hangup() {
    const s = session;
    if (!s) return;
    endCall("reasonHungUpLocal");
    s.stop({});
  }

  function toggleMute() {
    if (!session) return;
    if (state.muted) session.unmute("audio");
    else session.mute("audio");
    state.muted = !state.muted;
    render();
  }

  const api = {
    state,
    history,
    config,
    login,
    logout,
    call,
    accept,
    reject,
    hangup,
    toggleMute,
    dominantFrequency,
    pressKey,
    dtmfHandler: sendDtmfAsSystemMessage,
    hold,
    transfer,
  };

  /** Tell the peer (the bridge) to act on this call: hold, unhold, transfer. */
  function sendControl(type, extra) {
    if (!session || state.phase !== "connected") return false;
    sdk.chat.sendSystemMessage(state.peerId, {
      body: type,
      extension: Object.assign({ type, sessionID: session.ID }, extra || {}),
    });
    return true;
  }

  function hold() {
    if (sendControl(state.held ? "unhold" : "hold")) {
      state.held = !state.held;
      render();
    }
  }

  function transfer(exten) {
    exten = String(exten || "").trim();
    if (!/^[0-9*#+]{1,32}$/.test(exten)) return false;
    return sendControl("transfer", { exten });
  }

  async function sendDtmfAsSystemMessage(digit, context) {
    sdk.chat.sendSystemMessage(context.peerId, {
      body: "dtmf",
      extension: { type: "dtmf", digit, sessionID: context.session.ID },
    });
  }

  async function pressKey(digit) {
    if (!session || !/^[0-9*#]$/.test(digit)) return;
    state.dtmf = (state.dtmf + digit).slice(-24);
    render();
    try {
      await api.dtmfHandler(digit, { session, peerId: state.peerId });
    } catch (err) {
      showError("call-error", t("errorCall", { error: errorText(err) }));
    }
  }

  // -- SDK listeners -----------------------------------------------------------------------

  if (sdk.videochat) {
    const vc = sdk.videochat;
    vc.onCallListener = (s, userInfo) => {
      if (session) {
        s.reject({ busy: true });
        return;
      }
      session = s;
      showError("call-error", "");
      setPhase("ringing", {
        peerId: s.initiatorID, peerName: peerNameOf(s.initiatorID, userInfo), sessionId: s.ID,
        direction: "incoming", reason: null, error: null, dtmf: "", dtmfReceived: "", held: false, connectedAt: null,
      });
      if (!state.peerName) lookUpName(s.initiatorID);
    };
    vc.onAcceptCallListener = (s, userId) => {
      if (!isCurrent(s)) return;
      if (userId === state.userId && state.phase === "ringing") {
        if (vc.clearSession) vc.clearSession(s.ID);
        endCall("reasonElsewhere");
        return;
      }
      if (state.phase === "dialing") setPhase("connecting");
    };
    vc.onRejectCallListener = (s, userId) => {
      if (!isCurrent(s)) return;
      endCall(userId === state.userId ? "reasonElsewhere" : "reasonRejectedRemote");
    };
    vc.onStopCallListener = (s) => {
      if (!isCurrent(s)) return;
      endCall(state.phase === "ringing" ? "reasonMissed" : "reasonHungUpRemote");
    };
    vc.onUserNotAnswerListener = (s) => {
      if (isCurrent(s)) endCall("reasonNoAnswer");
    };
    vc.onRemoteStreamListener = (s, userId, stream) => {
      if (isCurrent(s)) attachRemote(stream);
    };
    vc.onSessionConnectionStateChangedListener = (s, userId, connectionState) => {
      if (!isCurrent(s)) return;
      if (connectionState === CONNECTION.CONNECTED || connectionState === CONNECTION.COMPLETED) {
        if (!state.connectedAt) state.connectedAt = Date.now();
        setPhase("connected");
      } else if (connectionState === CONNECTION.CHECKING && state.phase !== "connected") {
        setPhase("connecting");
      } else if (connectionState === CONNECTION.FAILED) {
        failCall(s, t("reasonFailed"));
      }
    };
    vc.onSessionCloseListener = (s) => {
      // The SDK may close the session before it fires the listener that says why (stop,
      // reject): give that one the first word. It closes an unanswered incoming call silently
      // when its answer timer runs out.
      setTimeout(() => {
        if (isCurrent(s)) endCall(state.phase === "ringing" ? "reasonMissed" : "reasonClosed");
      }, 0);
    };
  }
  // The bridge relays the phone's DTMF as a system message {type: "dtmf", digit, sessionID}.
  sdk.chat.onSystemMessageListener = (message) => {
    const ext = (message && message.extension) || {};
    if (ext.type !== "dtmf" || !session || ext.sessionID !== session.ID) return;
    if (!/^[0-9*#A-D]$/.test(ext.digit || "")) return;
    state.dtmfReceived = (state.dtmfReceived + ext.digit).slice(-24);
    render();
  };
  sdk.chat.onDisconnectedListener = () => {
    if (state.phase !== "offline") console.warn("agent: chat disconnected; the SDK reconnects");
  };

  // -- DOM ---------------------------------------------------------------------------------

  $("login-button").dataset.label = $("login-button").textContent;
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    login($("login").value.trim(), $("password").value).catch(() => {});
  });
  $("logout-button").addEventListener("click", () => logout());
  $("accept-button").addEventListener("click", () => accept());
  $("reject-button").addEventListener("click", () => reject());
  $("hangup-button").addEventListener("click", () => hangup());
  $("mute-button").addEventListener("click", () => toggleMute());
  $("hold-button").addEventListener("click", () => hold());
  $("transfer-button").addEventListener("click", () => {
    // The number typed in the dial field, else ask.
    const exten = $("dial-user").value.trim() || window.prompt(strings.transferTo) || "";
    transfer(exten);
  });
  for (const key of document.querySelectorAll(".key")) {
    key.addEventListener("click", () => pressKey(key.dataset.digit));
  }
  $("dial-form").addEventListener("submit", (event) => {
    event.preventDefault();
    call($("dial-user").value.trim()).catch((err) => {
      showError("call-error", err.message || String(err));
    });
  });

  window.agentApp = api;
  render();
})();
