/*
 * Frontdesk website chat widget. Embed with:
 *   <script src="https://HOST/widget.js" data-site="PUBLIC_KEY" async></script>
 * Optional: data-lang="en|ru|uz"; for a logged-in user, data-user-id, data-user-time (Unix seconds)
 * and data-user-hash (hex HMAC-SHA256 of "<id>:<time>" with the site's secret, computed by the site's
 * server), and data-user-name.
 * The page may call FrontdeskWidget.logout() when its user logs out, and FrontdeskWidget.identify(
 * {id, time, hash, name}) when one logs in without a reload.
 * The protocol is documented in docs/widget-protocol.md. No framework, no dependencies.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.__frontdeskWidget) return;
  window.__frontdeskWidget = true;

  // services/render.py SAFE_TAGS: the server sends nothing else; this holds if it ever did.
  var SAFE_TAGS = { B: 1, STRONG: 1, I: 1, EM: 1, U: 1, INS: 1, S: 1, STRIKE: 1, DEL: 1, A: 1, CODE: 1, PRE: 1,
    BLOCKQUOTE: 1, SPAN: 1, "TG-SPOILER": 1 };
  // A paperclip (Feather's), drawn: emoji fonts are not everywhere.
  var CLIP = '<svg viewBox="0 0 24 24" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="2" ' +
    'stroke-linecap="round" stroke-linejoin="round"><path d="M21.44 11.05l-9.19 9.19a6 6 0 0 1-8.49-8.49l9.19-9.19' +
    'a4 4 0 0 1 5.66 5.66l-9.2 9.19a2 2 0 0 1-2.83-2.83l8.49-8.48"/></svg>';
  var data = script.dataset;
  var site = data.site || "";
  var base = new URL(script.src, location.href);
  var httpBase = base.origin;
  var wsBase = (base.protocol === "https:" ? "wss://" : "ws://") + base.host;
  var store = storage();
  var keyPrefix = "frontdesk:" + site + ":";
  // The page's wish, then the browser's languages: the server picks the first it speaks, else its DEFAULT_LOCALE.
  var lang = [data.lang].concat(Array.prototype.slice.call(navigator.languages || [navigator.language]))
    .filter(Boolean).slice(0, 10).join(",");
  var identity = data.userId && data.userHash ?
    { id: data.userId, time: data.userTime || "", hash: data.userHash, name: data.userName || "" } : null;

  var state = {
    config: null, strings: {}, socket: null, connected: false, closedForGood: false, attempt: 0,
    retryTimer: 0, token: store.get(keyPrefix + "token"), lastId: 0, messages: {}, drafts: {},
    pending: loadPending(), open: false, unread: 0, mode: "ai", agent: null, maxText: 4000, telegram: false,
    identityRefused: false, asks: [], upload: null, uploads: [], files: {}
  };
  var ui = {};

  function storage() {
    try {
      var probe = "frontdesk:probe";
      window.localStorage.setItem(probe, "1");
      window.localStorage.removeItem(probe);
      return {
        get: function (k) { return window.localStorage.getItem(k); },
        set: function (k, v) { window.localStorage.setItem(k, v); },
        del: function (k) { window.localStorage.removeItem(k); }
      };
    } catch (e) {  // storage blocked: the widget still works for this page view
      var memory = {};
      return {
        get: function (k) { return memory.hasOwnProperty(k) ? memory[k] : null; },
        set: function (k, v) { memory[k] = v; },
        del: function (k) { delete memory[k]; }
      };
    }
  }

  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    var hex = Array.prototype.map.call(bytes, function (b) { return (b + 256).toString(16).slice(1); }).join("");
    return hex.slice(0, 8) + "-" + hex.slice(8, 12) + "-" + hex.slice(12, 16) + "-" + hex.slice(16, 20) + "-" +
      hex.slice(20);
  }

  // --- messages not yet confirmed by the server survive reloads and lost connections ---------------
  function loadPending() {
    try { return JSON.parse(store.get(keyPrefix + "pending") || "[]"); } catch (e) { return []; }
  }
  function savePending() { store.set(keyPrefix + "pending", JSON.stringify(state.pending)); }

  // --- the page -------------------------------------------------------------------------------------
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    for (var name in attrs || {}) {
      if (name === "text") node.textContent = attrs[name];
      else if (name.slice(0, 2) === "on") node.addEventListener(name.slice(2), attrs[name]);
      else node.setAttribute(name, attrs[name]);
    }
    (children || []).forEach(function (child) { node.appendChild(child); });
    return node;
  }

  function t(key) { return state.strings[key] || key; }

  function css(config) {
    return ":host{all:initial}" +
      "*{box-sizing:border-box;font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}" +
      ".bubble{position:fixed;right:20px;bottom:20px;width:60px;height:60px;border-radius:50%;border:0;" +
      "background:" + config.color + ";color:" + config.text_color + ";cursor:pointer;" +
      "box-shadow:0 4px 16px rgba(0,0,0,.25);z-index:2147483000;display:flex;align-items:center;" +
      "justify-content:center}" +
      ".bubble:focus-visible,button:focus-visible,textarea:focus-visible{outline:3px solid #93c5fd;" +
      "outline-offset:2px}.bubble svg{width:28px;height:28px;fill:currentColor}" +
      ".badge{position:absolute;top:-2px;right:-2px;min-width:20px;height:20px;border-radius:10px;" +
      "background:#dc2626;color:#fff;font-size:12px;line-height:20px;text-align:center;padding:0 5px}" +
      ".badge[hidden]{display:none}" +
      ".panel{position:fixed;right:20px;bottom:92px;width:370px;height:min(600px,calc(100vh - 120px));" +
      "background:#fff;color:#111827;border-radius:16px;box-shadow:0 8px 32px rgba(0,0,0,.25);display:flex;" +
      "flex-direction:column;overflow:hidden;z-index:2147483000;font-size:15px;line-height:1.4}" +
      ".panel[hidden]{display:none}" +
      "header{background:" + config.color + ";color:" + config.text_color + ";padding:12px 14px;display:flex;" +
      "align-items:center;gap:8px}header .who{flex:1;min-width:0}" +
      "header h2{margin:0;font-size:16px;font-weight:600;white-space:nowrap;overflow:hidden;" +
      "text-overflow:ellipsis}header p{margin:2px 0 0;font-size:12px;opacity:.9}" +
      "header button{background:transparent;border:1px solid currentColor;color:inherit;border-radius:8px;" +
      "padding:4px 8px;font-size:12px;cursor:pointer}header button.x{border:0;font-size:22px;line-height:1;" +
      "padding:0 6px}" +
      ".log{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:8px;background:#f9fafb}" +
      ".msg{max-width:85%;padding:8px 12px;border-radius:14px;white-space:pre-wrap;overflow-wrap:anywhere;" +
      "background:#fff;border:1px solid #e5e7eb;align-self:flex-start}" +
      ".msg.customer{align-self:flex-end;background:" + config.color + ";color:" + config.text_color +
      ";border-color:transparent}.msg.system{align-self:center;background:transparent;border:0;color:#4b5563;" +
      "font-size:13px;text-align:center}.msg .by{display:block;font-size:11px;opacity:.7;margin-bottom:2px}" +
      ".msg.pending{opacity:.6}.msg.failed{border:1px dashed #dc2626;cursor:pointer}" +
      ".dots{display:inline-flex;gap:4px;padding:4px 0}.dots i{width:6px;height:6px;border-radius:50%;" +
      "background:#9ca3af;animation:fd-blink 1.2s infinite both}.dots i:nth-child(2){animation-delay:.2s}" +
      ".dots i:nth-child(3){animation-delay:.4s}@keyframes fd-blink{0%,80%,100%{opacity:.25}40%{opacity:1}}" +
      "@media (prefers-reduced-motion:reduce){.dots i{animation:none;opacity:.6}}" +
      ".msg a{color:inherit}.msg pre,.msg code{font-family:ui-monospace,monospace;font-size:13px}" +
      ".msg blockquote{margin:4px 0;padding-left:8px;border-left:3px solid #d1d5db}" +
      ".msg .sources{margin-top:6px;padding-top:4px;border-top:1px solid #e5e7eb;font-size:12px;color:#4b5563}" +
      ".stars{display:flex;gap:4px;margin-top:6px;justify-content:center}.stars button{border:0;" +
      "background:transparent;font-size:22px;cursor:pointer;padding:0 2px}" +
      ".note{padding:6px 12px;font-size:12px;color:#92400e;background:#fef3c7}.note[hidden]{display:none}" +
      ".msg.offer a.go{display:inline-block;margin-top:6px;padding:6px 12px;border-radius:10px;" +
      "text-decoration:none;background:" + config.color + ";color:" + config.text_color + "}" +
      ".foot{display:flex;justify-content:center;padding:0 10px 8px;background:#fff}.foot[hidden]{display:none}" +
      ".foot button{border:0;background:transparent;color:#374151;font-size:12px;text-decoration:underline;" +
      "cursor:pointer;padding:2px 4px}" +
      "form{display:flex;gap:8px;padding:10px;border-top:1px solid #e5e7eb;background:#fff}" +
      "textarea{flex:1;resize:none;border:1px solid #d1d5db;border-radius:10px;padding:8px 10px;font-size:15px;" +
      "max-height:120px;min-height:40px;min-width:0;color:#111827;background:#fff}" +
      "textarea::placeholder{white-space:nowrap;overflow:hidden;text-overflow:ellipsis}" +
      "form button{border:0;border-radius:10px;padding:0 12px;background:" + config.color + ";color:" +
      config.text_color + ";font-size:14px;cursor:pointer}" +
      "form .attach{background:transparent;color:#4b5563;padding:0;margin-right:-2px;display:flex;align-items:center}" +
      "form .attach svg{width:22px;height:22px}.clip svg{width:14px;height:14px;vertical-align:-2px;" +
      "margin-right:4px}" +
      ".msg img.file{display:block;max-width:100%;max-height:240px;border-radius:10px;margin-top:4px;" +
      "background:#e5e7eb;min-width:48px;min-height:48px}" +
      ".msg button.file{display:block;margin-top:4px;border:1px solid currentColor;border-radius:8px;" +
      "background:transparent;color:inherit;font-size:13px;padding:4px 8px;cursor:pointer;text-align:left;" +
      "max-width:100%;overflow-wrap:anywhere}" +
      ".msg .progress{display:block;height:4px;margin-top:6px;border-radius:2px;background:rgba(255,255,255,.35);" +
      "overflow:hidden}.msg .progress i{display:block;height:100%;width:0;background:currentColor}" +
      ".drop{position:absolute;inset:0;display:flex;align-items:center;justify-content:center;text-align:center;" +
      "padding:24px;background:rgba(255,255,255,.92);border:3px dashed " + config.color + ";border-radius:16px;" +
      "color:#111827;font-size:16px;z-index:1}.drop[hidden]{display:none}" +
      "@media (max-width:480px){.panel{right:0;bottom:0;width:100vw;height:100%;border-radius:0}" +
      ".panel:not([hidden])~.bubble{display:none}}" +
      "@media (prefers-reduced-motion:no-preference){.panel{transition:opacity .15s}}";
  }

  function render() {
    var config = state.config;
    var host = el("div", { id: "frontdesk-widget" });
    var root = host.attachShadow({ mode: "open" });
    // A constructed stylesheet is not inline style as far as a page's CSP goes, so a strict
    // style-src still lets the widget look right; a <style> element is the fallback.
    try {
      var sheet = new CSSStyleSheet();
      sheet.replaceSync(css(config));
      root.adoptedStyleSheets = [sheet];
    } catch (e) {
      root.appendChild(el("style", { text: css(config) }));
    }
    ui.badge = el("span", { "class": "badge", hidden: "" });
    ui.bubble = el("button", { "class": "bubble", type: "button", "aria-label": t("open"),
      "aria-expanded": "false", "aria-controls": "frontdesk-panel", onclick: toggle });
    ui.bubble.innerHTML = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M4 4h16a2 2 0 0 1 2 2v10a2 ' +
      '2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2z"/></svg>';
    ui.bubble.appendChild(ui.badge);
    ui.subtitle = el("p", { text: t("with_ai") });
    ui.person = el("button", { type: "button", text: t("person"), onclick: askForPerson });
    ui.log = el("div", { "class": "log", role: "log", "aria-live": "polite", "aria-relevant": "additions" });
    ui.note = el("div", { "class": "note", role: "status", hidden: "" });
    ui.input = el("textarea", { rows: "1", placeholder: t("placeholder"), "aria-label": t("placeholder"),
      maxlength: String(state.maxText), onkeydown: onKey });
    var upload = state.upload || { accept: "" };
    ui.picker = el("input", { type: "file", accept: upload.accept, hidden: "", tabindex: "-1",
      "aria-hidden": "true", onchange: function () {
        if (ui.picker.files && ui.picker.files[0]) attach(ui.picker.files[0]);
        ui.picker.value = "";
      } });
    ui.attach = el("button", { "class": "attach", type: "button", title: t("attach"), "aria-label": t("attach"),
      onclick: function () { ui.picker.click(); } });
    ui.attach.innerHTML = CLIP;
    ui.attach.hidden = !state.upload;
    ui.input.addEventListener("paste", onPaste);
    ui.form = el("form", { onsubmit: onSubmit }, [ui.attach, ui.picker, ui.input,
      el("button", { type: "submit", text: t("send") })]);
    ui.drop = el("div", { "class": "drop", hidden: "" }, [el("span", { text: t("drop") })]);
    ui.foot = el("div", { "class": "foot" }, [el("button", { type: "button", text: t("link"), onclick: askForLink })]);
    ui.foot.hidden = !state.telegram;
    ui.panel = el("div", { "class": "panel", id: "frontdesk-panel", role: "dialog", "aria-modal": "false",
      "aria-label": config.title || t("title"), hidden: "" }, [
      el("header", {}, [
        el("div", { "class": "who" }, [el("h2", { text: config.title || t("title") }), ui.subtitle]),
        ui.person,
        el("button", { "class": "x", type: "button", "aria-label": t("close"), text: "×", onclick: toggle })
      ]),
      ui.log, ui.note, ui.form, ui.foot, ui.drop
    ]);
    if (state.upload) listenForDrops(ui.panel);
    ui.panel.addEventListener("keydown", function (event) { if (event.key === "Escape") toggle(); });
    root.appendChild(ui.panel);
    root.appendChild(ui.bubble);
    ui.greeting = el("div", { "class": "msg ai greeting", "data-author": "ai" }, [
      el("span", { text: config.greeting })]);
    ui.log.appendChild(ui.greeting);
    document.body.appendChild(host);
    state.pending.forEach(showPending);
  }

  function toggle() {
    state.open = !state.open;
    ui.panel.hidden = !state.open;
    ui.bubble.setAttribute("aria-expanded", String(state.open));
    ui.bubble.setAttribute("aria-label", state.open ? t("close") : t("open"));
    if (state.open) {
      state.unread = 0;
      updateBadge();
      connect();
      ui.input.focus();
      scrollDown();
    } else {
      ui.bubble.focus();
    }
  }

  function updateBadge() {
    ui.badge.hidden = state.unread === 0;
    ui.badge.textContent = String(state.unread);
  }

  function scrollDown() { ui.log.scrollTop = ui.log.scrollHeight; }

  function setNote(text) {
    ui.note.textContent = text || "";
    ui.note.hidden = !text;
  }

  function sanitize(html) {
    var template = document.createElement("template");
    template.innerHTML = html;
    (function clean(node) {
      Array.prototype.slice.call(node.childNodes).forEach(function (child) {
        if (child.nodeType === 3) return;
        if (child.nodeType !== 1 || !SAFE_TAGS[child.tagName]) {
          node.replaceChild(document.createTextNode(child.textContent || ""), child);
          return;
        }
        Array.prototype.slice.call(child.attributes).forEach(function (attr) {
          var keep = child.tagName === "A" && attr.name === "href" && /^(https?:|tg:|mailto:)/i.test(attr.value);
          if (!keep) child.removeAttribute(attr.name);
        });
        if (child.tagName === "A") { child.setAttribute("target", "_blank"); child.setAttribute("rel", "noopener"); }
        clean(child);
      });
    })(template.content);
    return template.content;
  }

  function bubbleFor(frame) {
    var node = el("div", { "class": "msg " + frame.author, "data-id": String(frame.id || ""),
      "data-author": frame.author });
    if (frame.author === "manager" || frame.author === "ai") {
      node.appendChild(el("span", { "class": "by", text: frame.author === "ai" ? t("ai") :
        (frame.by || state.agent || t("manager")) }));
    }
    var body = el("span", { "class": "body" });
    if (frame.html) body.appendChild(sanitize(frame.html)); else body.textContent = frame.text || "";
    node.appendChild(body);
    (frame.attachments || []).forEach(function (item, index) {
      node.appendChild(attachmentView(frame, item, index));
    });
    if (frame.sources && frame.sources.length) node.appendChild(sourcesLine(frame.sources));
    if (frame.rate) node.appendChild(stars(frame.rate));
    return node;
  }

  // --- files: a photo shown in place, any other file a button that downloads it ---------------------------
  // Fetched with the visitor's token (never put in a URL), so the server checks, file by file, that they may see it.
  function fileUrl(messageId, index) {
    var key = messageId + "/" + index;
    if (!state.files[key]) {
      state.files[key] = fetch(httpBase + "/widget/api/files/" + key + "?site=" + encodeURIComponent(site), {
        credentials: "omit", headers: { Authorization: "Bearer " + state.token }
      }).then(function (response) {
        if (!response.ok) throw new Error("file " + key + ": " + response.status);
        return response.blob();
      }).then(function (blob) { return URL.createObjectURL(blob); });
      state.files[key].catch(function () { delete state.files[key]; });
    }
    return state.files[key];
  }

  function clipped(tag, attrs, label) {
    var node = el(tag, attrs);
    var icon = el("span", { "class": "clip", "aria-hidden": "true" });
    icon.innerHTML = CLIP;
    node.appendChild(icon);
    node.appendChild(document.createTextNode(label));
    return node;
  }

  function attachmentView(frame, item, index) {
    var label = item.name || t("download");
    if (!item.file || !frame.id || !state.token) return clipped("span", { "class": "by" }, item.name || item.type);
    if (item.image) {
      var image = el("img", { "class": "file", alt: item.name || item.type, "data-index": String(index) });
      fileUrl(frame.id, index).then(function (url) { image.src = url; scrollDown(); }, function () {
        image.replaceWith(clipped("span", { "class": "by" }, item.name || item.type));
      });
      return image;
    }
    return clipped("button", { "class": "file", type: "button", title: t("download"), onclick: function () {
      fileUrl(frame.id, index).then(function (url) {
        var link = el("a", { href: url, download: item.name || "file" });
        ui.panel.appendChild(link);
        link.click();
        link.remove();
      }, function () {});
    } }, label);
  }

  function accepted(file) {
    var rules = state.upload;
    if (!rules) return false;
    if (file.size > rules.max_bytes) { setNote(t("file_too_large")); return false; }
    var name = (file.name || "").toLowerCase();
    var ok = rules.accept.split(",").some(function (kind) {
      return kind && (kind === file.type || (kind.charAt(0) === "." && name.slice(-kind.length) === kind));
    });
    if (!ok) setNote(t("file_type"));
    return ok;
  }

  function onPaste(event) {
    var files = event.clipboardData && event.clipboardData.files;
    if (!state.upload || !files || !files.length) return;
    event.preventDefault();
    attach(files[0]);
  }

  function listenForDrops(panel) {
    var depth = 0;
    function hasFiles(event) {
      return Array.prototype.indexOf.call((event.dataTransfer && event.dataTransfer.types) || [], "Files") >= 0;
    }
    panel.addEventListener("dragenter", function (event) {
      if (!hasFiles(event)) return;
      event.preventDefault();
      depth += 1;
      ui.drop.hidden = false;
    });
    panel.addEventListener("dragover", function (event) { if (hasFiles(event)) event.preventDefault(); });
    panel.addEventListener("dragleave", function () {
      depth = Math.max(0, depth - 1);
      if (!depth) ui.drop.hidden = true;
    });
    panel.addEventListener("drop", function (event) {
      if (!hasFiles(event)) return;
      event.preventDefault();
      depth = 0;
      ui.drop.hidden = true;
      var files = event.dataTransfer.files;
      if (files && files.length) attach(files[0]);
    });
  }

  // A file with the text box's words as its caption: a bubble with its progress until the server has it.
  function attach(file) {
    if (!accepted(file)) return;
    var caption = ui.input.value;
    if (caption.length > state.maxText) { setNote(t("too_long")); return; }
    ui.input.value = "";
    setNote("");
    var item = { client_id: uuid(), file: file, caption: caption };
    var bar = el("i");
    item.status = el("span", { "class": "by", text: t("uploading").replace("{percent}", "0") });
    item.node = el("div", { "class": "msg customer pending upload", "data-client-id": item.client_id,
      "data-author": "customer", "aria-busy": "true" }, [
      el("span", { "class": "body", text: caption || file.name || "" }), item.status,
      el("span", { "class": "progress", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100" }, [bar])]);
    item.bar = bar;
    ui.log.appendChild(item.node);
    scrollDown();
    if (state.connected && state.token) sendFile(item); else { state.uploads.push(item); connect(); }
  }

  function sendFile(item) {
    var form = new FormData();
    form.append("client_id", item.client_id);
    form.append("caption", item.caption);
    form.append("file", item.file, item.file.name || "file");
    var request = new XMLHttpRequest();
    request.open("POST", httpBase + "/widget/api/upload?site=" + encodeURIComponent(site) + "&lang=" +
      encodeURIComponent(lang));
    request.setRequestHeader("Authorization", "Bearer " + state.token);
    request.upload.onprogress = function (event) {
      if (!event.lengthComputable) return;
      var percent = Math.min(100, Math.round(event.loaded * 100 / event.total));
      item.bar.style.width = percent + "%";
      item.bar.parentNode.setAttribute("aria-valuenow", String(percent));
      item.status.textContent = t("uploading").replace("{percent}", String(percent));
    };
    request.onload = function () {
      var body = null;
      try { body = JSON.parse(request.responseText); } catch (e) { body = null; }
      if (request.status >= 200 && request.status < 300 && body && body.type === "message") {
        showMessage(body);
      } else {
        uploadFailed(item, body && body.error ? body.error.message : t("failed"));
      }
    };
    request.onerror = function () { uploadFailed(item, t("offline")); };
    request.send(form);
  }

  function uploadFailed(item, message) {
    if (item.node.parentNode) item.node.parentNode.removeChild(item.node);
    if (item.caption && !ui.input.value) ui.input.value = item.caption;
    setNote(message);
  }

  // The documents and pages an answer drew from: pages as links, documents by their title.
  function sourcesLine(sources) {
    var line = el("div", { "class": "sources" }, [el("span", { text: t("sources") + " " })]);
    sources.forEach(function (source, index) {
      if (index) line.appendChild(document.createTextNode("; "));
      line.appendChild(/^https?:\/\//.test(source.url || "") ?
        el("a", { href: source.url, target: "_blank", rel: "noopener", text: source.title || source.url }) :
        el("span", { text: source.title }));
    });
    return line;
  }

  function stars(conversation) {
    var row = el("div", { "class": "stars", role: "group", "aria-label": t("rate") });
    [1, 2, 3, 4, 5].forEach(function (count) {
      row.appendChild(el("button", { type: "button", text: "⭐", "aria-label": String(count) + " / 5",
        onclick: function () { send({ type: "rate", conversation: conversation, stars: count }); } }));
    });
    return row;
  }

  // Messages are kept in id order whatever order they arrive in, each once.
  function place(node, id) {
    var after = null;
    Array.prototype.forEach.call(ui.log.querySelectorAll(".msg[data-id]"), function (other) {
      var otherId = Number(other.getAttribute("data-id"));
      if (otherId && otherId < id) after = other;
    });
    var reference = after ? after.nextSibling : ui.greeting.nextSibling;
    // An unconfirmed message stays last; a streaming answer stays under its question.
    while (reference && reference.classList && reference.classList.contains("draft") &&
           Number(reference.getAttribute("data-reply-to")) < id) reference = reference.nextSibling;
    ui.log.insertBefore(node, reference);
  }

  function showMessage(frame) {
    if (frame.client_id) {
      var local = ui.log.querySelector('.msg[data-client-id="' + frame.client_id + '"]');
      if (local) local.parentNode.removeChild(local);
      state.pending = state.pending.filter(function (p) { return p.client_id !== frame.client_id; });
      savePending();
    }
    if (frame.reply_to && state.drafts[frame.reply_to]) {
      var draft = state.drafts[frame.reply_to];
      if (draft.parentNode) draft.parentNode.removeChild(draft);
      delete state.drafts[frame.reply_to];
    }
    var existing = state.messages[frame.id];
    var node = bubbleFor(frame);
    if (existing) {
      existing.parentNode.replaceChild(node, existing);  // an edit: the same id, new text
    } else {
      place(node, frame.id);
      if (!state.open && frame.author !== "customer") { state.unread += 1; updateBadge(); }
    }
    state.messages[frame.id] = node;
    if (frame.id > state.lastId) state.lastId = frame.id;
    scrollDown();
  }

  // The bubble an answer is written into, under the question it answers.
  function draftFor(replyTo) {
    var draft = state.drafts[replyTo];
    if (!draft) {
      draft = el("div", { "class": "msg ai draft", "data-author": "ai", "data-reply-to": String(replyTo),
        "aria-busy": "true" });
      state.drafts[replyTo] = draft;
      var question = state.messages[replyTo];
      ui.log.insertBefore(draft, question ? question.nextSibling : null);
    }
    return draft;
  }

  // The answer waits its turn (a busy moment): "typing…" until its first words, or a while without news.
  function showTyping(frame) {
    var draft = draftFor(frame.reply_to);
    if (draft.querySelector(".body")) return;  // its words are showing already
    draft.textContent = "";
    draft.appendChild(el("span", { "class": "by", text: t("ai") }));
    draft.appendChild(el("span", { "class": "dots", role: "status", "aria-label": t("typing") },
      [el("i"), el("i"), el("i")]));
    clearTimeout(draft.typingTimer);
    draft.typingTimer = setTimeout(function () {
      if (!draft.querySelector(".body") && draft.parentNode) {
        draft.parentNode.removeChild(draft);
        delete state.drafts[frame.reply_to];
      }
    }, 8000);
    scrollDown();
  }

  function showDelta(frame) {
    var draft = draftFor(frame.reply_to);
    clearTimeout(draft.typingTimer);
    draft.textContent = "";
    draft.appendChild(el("span", { "class": "by", text: t("ai") }));
    var body = el("span", { "class": "body" });
    body.appendChild(sanitize(frame.html || frame.text || ""));
    draft.appendChild(body);
    scrollDown();
  }

  function showStatus(frame) {
    state.mode = frame.mode;
    state.agent = frame.agent || null;
    ui.subtitle.textContent = frame.mode === "human" ?
      (frame.agent ? t("with_agent").replace("{name}", frame.agent) : t("with_team")) : t("with_ai");
    ui.person.hidden = frame.mode === "human" && !frame.closed;
  }

  function showPending(item) {
    var node = el("div", { "class": "msg customer pending", "data-client-id": item.client_id,
      "data-author": "customer", title: t("sending") }, [el("span", { "class": "body", text: item.text })]);
    ui.log.appendChild(node);
    scrollDown();
  }

  // --- the connection ---------------------------------------------------------------------------------
  function connect() {
    if (state.socket || state.closedForGood) return;
    clearTimeout(state.retryTimer);
    var socket = new WebSocket(wsBase + "/widget/ws");
    state.socket = socket;
    socket.onopen = function () {
      var hello = { type: "hello", site: site, token: state.token || null, after: state.lastId || null, lang: lang };
      if (identity) hello.user = identity;
      socket.send(JSON.stringify(hello));
    };
    socket.onmessage = function (event) {
      var frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      onFrame(frame);
    };
    socket.onclose = function (event) {
      if (socket.replaced) return;  // logout() or identify() closed it, and connects afresh
      state.socket = null;
      state.connected = false;
      if (event.code === 4403) { state.closedForGood = true; return; }
      // The page's identity was refused (too old, or its user logged out): only a reload or identify() helps.
      if (state.identityRefused) { state.closedForGood = true; return; }
      if (event.code === 4401) { state.token = null; store.del(keyPrefix + "token"); state.attempt = 0; }
      if (state.open || state.pending.length) setNote(t("offline"));
      retry();
    };
  }

  function retry() {
    if (state.closedForGood) return;
    // Exponential backoff with jitter, from half a second to fifteen.
    var delay = Math.min(15000, 500 * Math.pow(2, state.attempt)) * (0.5 + Math.random() / 2);
    state.attempt += 1;
    clearTimeout(state.retryTimer);
    state.retryTimer = setTimeout(connect, delay);
  }

  function onFrame(frame) {
    if (frame.type === "welcome") {
      state.connected = true;
      state.attempt = 0;
      state.token = frame.token;
      store.set(keyPrefix + "token", frame.token);
      setNote("");
      state.pending.forEach(function (item) {  // sent again: the server stores each client_id once
        send({ type: "message", client_id: item.client_id, text: item.text });
      });
      state.asks.splice(0).forEach(send);
      state.uploads.splice(0).forEach(sendFile);
    } else if (frame.type === "message") {
      showMessage(frame);
    } else if (frame.type === "delta") {
      showDelta(frame);
    } else if (frame.type === "typing") {
      showTyping(frame);
    } else if (frame.type === "status") {
      showStatus(frame);
    } else if (frame.type === "rated") {
      Array.prototype.forEach.call(ui.log.querySelectorAll(".stars"), function (row) {
        row.replaceWith(el("span", { "class": "by", text: "⭐".repeat(frame.stars) + " " + t("rated") }));
      });
    } else if (frame.type === "link") {
      showLinkOffer(frame.url);
    } else if (frame.type === "linked") {
      Array.prototype.forEach.call(ui.log.querySelectorAll(".offer"), function (node) { node.remove(); });
      ui.log.appendChild(el("div", { "class": "msg system" }, [el("span", { text: t("linked") })]));
      ui.foot.hidden = true;
      scrollDown();
    } else if (frame.type === "signed_out") {  // the visitor logged out in another tab
      identity = null;
      forget();
    } else if (frame.type === "error") {
      if (frame.code === "text_too_long" || frame.code === "empty" || frame.code === "bad_frame") {
        markFailed();
      }
      if (frame.code === "bad_identity") state.identityRefused = true;
      setNote(frame.message);
    }
  }

  // A one-time t.me link: the visitor confirms in the bot, and this chat is in their Telegram history.
  function showLinkOffer(url) {
    if (!/^https:\/\/t\.me\//.test(url || "")) return;
    Array.prototype.forEach.call(ui.log.querySelectorAll(".offer"), function (node) { node.remove(); });
    ui.log.appendChild(el("div", { "class": "msg system offer" }, [
      el("span", { text: t("link_hint") }), el("br"),
      el("a", { "class": "go", href: url, target: "_blank", rel: "noopener", text: t("link_open") })]));
    scrollDown();
  }

  // Forget this visitor in this browser: the token, unsent messages and what the chat shows.
  function forget() {
    state.token = null;
    store.del(keyPrefix + "token");
    state.pending = [];
    savePending();
    state.messages = {};
    state.drafts = {};
    state.files = {};
    state.uploads = [];
    state.lastId = 0;
    if (!ui.log) return;
    Array.prototype.slice.call(ui.log.children).forEach(function (node) {
      if (node !== ui.greeting) node.remove();
    });
    showStatus({ mode: "ai", agent: null, closed: false });
    setNote("");
  }

  function disconnect() {
    clearTimeout(state.retryTimer);
    if (state.socket) {
      state.socket.replaced = true;
      state.socket.close();
    }
    state.socket = null;
    state.connected = false;
    state.attempt = 0;
    state.closedForGood = false;
    state.identityRefused = false;
  }

  // The site's user logged out: their tokens end on the server (on every device), and this chat is
  // cleared. Resolves when the server has ended them.
  function logout() {
    var token = state.token;
    identity = null;
    disconnect();
    forget();
    var ended = token ? fetch(httpBase + "/widget/api/logout?site=" + encodeURIComponent(site), {
      method: "POST", credentials: "omit", keepalive: true, headers: { Authorization: "Bearer " + token }
    }).then(function () {}, function () {}) : Promise.resolve();
    return ended.then(function () { if (state.open) connect(); });
  }

  // A user logged in on a page that did not reload: who they are, signed by the site's server.
  function identify(user) {
    if (!user || !user.id || !user.hash) return;
    identity = { id: String(user.id), time: String(user.time || ""), hash: String(user.hash),
                 name: String(user.name || "") };
    disconnect();
    forget();
    if (state.open) connect();
  }

  function markFailed() {
    // The server refused the oldest pending message for good: show it as not sent, tap to retry.
    var item = state.pending.shift();
    savePending();
    if (!item) return;
    var node = ui.log.querySelector('.msg[data-client-id="' + item.client_id + '"]');
    if (!node) return;
    node.classList.remove("pending");
    node.classList.add("failed");
    node.title = t("failed");
    node.onclick = function () {
      node.parentNode.removeChild(node);
      ui.input.value = item.text;
      ui.input.focus();
    };
  }

  function send(frame) {
    if (state.socket && state.connected && state.socket.readyState === 1) {
      state.socket.send(JSON.stringify(frame));
      return true;
    }
    connect();
    return false;
  }

  function onSubmit(event) {
    event.preventDefault();
    var text = ui.input.value;
    if (!text.trim()) return;
    if (text.length > state.maxText) { setNote(t("too_long")); return; }
    var item = { client_id: uuid(), text: text };
    state.pending.push(item);
    savePending();
    showPending(item);
    ui.input.value = "";
    send({ type: "message", client_id: item.client_id, text: text });
  }

  function onKey(event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      ui.form.requestSubmit ? ui.form.requestSubmit() : onSubmit(event);
    } else if (state.connected) {
      var now = Date.now();
      if (!state.typedAt || now - state.typedAt > 3000) { state.typedAt = now; send({ type: "typing" }); }
    }
  }

  // Asked before the connection is up: sent once it is.
  function ask(frame) { if (!send(frame)) state.asks = [frame]; }

  function askForPerson() { ask({ type: "person" }); }

  function askForLink() { ask({ type: "link" }); }

  window.addEventListener("online", function () {
    if (!state.socket && !state.closedForGood) { state.attempt = 0; connect(); }
  });

  function start() {
    var url = httpBase + "/widget/api/site?site=" + encodeURIComponent(site) + "&lang=" + encodeURIComponent(lang);
    fetch(url, { credentials: "omit" }).then(function (response) {
      if (!response.ok) throw new Error("Frontdesk widget: site " + site + " answered " + response.status);
      return response.json();
    }).then(function (body) {
      state.config = body.site;
      lang = body.lang;  // the one the server chose, for the socket's hello
      state.strings = body.strings;
      state.maxText = body.max_text || 4000;
      state.telegram = Boolean(body.telegram);
      state.upload = body.upload || null;
      render();
      if (state.token || state.pending.length) connect();  // a returning visitor sees replies arrive
    }).catch(function (error) { if (window.console) console.warn(String(error)); });
  }

  window.FrontdeskWidget = { logout: logout, identify: identify };

  if (document.body) start(); else document.addEventListener("DOMContentLoaded", start);
})();
