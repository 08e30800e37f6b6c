/* A stand-in for Telegram's telegram-web-app.js in browser tests: the same window.Telegram.WebApp
   surface the Mini App uses, with initData signed by tgsim for the test's user. */
(function () {
  const config = window.__FD_TELEGRAM__ || {};
  const params = new URLSearchParams(config.initData || "");
  let user = null;
  try { user = JSON.parse(params.get("user") || "null"); } catch (error) { user = null; }
  const theme = config.themeParams || {};
  for (const [key, value] of Object.entries(theme)) {
    document.documentElement.style.setProperty("--tg-theme-" + key.replace(/_/g, "-"), value);
  }
  const button = () => ({ show() {}, hide() {}, onClick() {}, offClick() {}, setText() {}, enable() {}, disable() {} });
  window.Telegram = { WebApp: {
    initData: config.initData || "",
    initDataUnsafe: { user, auth_date: params.get("auth_date") },
    colorScheme: config.colorScheme || "light",
    themeParams: theme,
    platform: "tdesktop",
    version: "9.0",
    ready() { window.__FD_READY__ = true; },
    expand() {},
    close() {},
    showConfirm(message, callback) { window.__FD_CONFIRMS__ = (window.__FD_CONFIRMS__ || []).concat([message]); callback(true); },
    showAlert(message, callback) { if (callback) callback(); },
    openTelegramLink(url) { window.__FD_OPENED__ = (window.__FD_OPENED__ || []).concat([url]); },
    MainButton: button(),
    BackButton: button(),
    HapticFeedback: { impactOccurred() {}, notificationOccurred() {} },
  } };
})();
