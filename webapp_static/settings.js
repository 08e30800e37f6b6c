/* The caller's language, notification settings, data export and deletion. */
"use strict";

FD.start(async (me) => {
  const form = document.getElementById("preferences");
  form.elements.language.value = me.locale;
  form.elements.silent.checked = me.preferences.silent;
  form.elements.rating_requests.checked = me.preferences.rating_requests;
  if (me.csrf_token) {
    const logout = document.getElementById("logout");
    logout.elements.csrf.value = me.csrf_token;
    logout.hidden = false;
  }

  /* Browser sessions: this one is signed out below ("Sign out of this browser"), the others here. */
  document.getElementById("browsers").hidden = !FD.isStaff(me);
  const sessionList = document.getElementById("session-list");
  const endOthers = document.getElementById("end-others");

  function showSessions(data) {
    const rows = data.sessions.map((session) => {
      const text = FD.t("session_item", { when: FD.when(session.created_at), until: FD.when(session.expires_at) });
      const item = FD.el("li", { "data-id": session.id },
        FD.el("span", {}, session.current ? `${FD.t("session_current")} · ${text}` : text));
      if (!session.current) item.append(FD.el("button", { type: "button", class: "secondary" }, FD.t("session_end")));
      return item;
    });
    sessionList.replaceChildren(...(rows.length ? rows : [FD.el("li", { class: "muted" }, FD.t("sessions_none"))]));
    endOthers.hidden = !data.sessions.some((session) => !session.current);
  }

  sessionList.addEventListener("click", async (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    button.disabled = true;
    try {
      showSessions(await FD.api("DELETE", "/api/me/sessions/" + button.closest("li").dataset.id));
    } catch (error) {
      FD.toast(error.message);
      button.disabled = false;
    }
  });
  endOthers.addEventListener("click", async () => {
    try {
      showSessions(await FD.api("DELETE", "/api/me/sessions"));
    } catch (error) {
      FD.toast(error.message);
    }
  });
  if (FD.isStaff(me)) FD.api("GET", "/api/me/sessions").then(showSessions).catch((error) => FD.toast(error.message));

  form.addEventListener("change", async (event) => {
    const field = event.target;
    const patch = {};
    patch[field.name] = field.type === "checkbox" ? field.checked : field.value;
    try {
      const updated = await FD.api("PATCH", "/api/me", patch);
      if (field.name === "language") {
        document.cookie = "frontdesk_lang=" + updated.locale + "; path=/; max-age=31536000; samesite=lax";
        location.reload();
        return;
      }
      FD.toast(FD.t("saved"));
    } catch (error) {
      FD.toast(error.message);
    }
  });

  /* In Telegram a download link does nothing: fetch the file with the signed header instead. */
  document.getElementById("export").addEventListener("click", async (event) => {
    event.preventDefault();
    try {
      const data = await FD.api("GET", "/api/me/data");
      const blob = new Blob([JSON.stringify(data, null, 2)], { type: "application/json" });
      const link = FD.el("a", { href: URL.createObjectURL(blob), download: `my-data-${me.id}.json` });
      document.body.append(link);
      link.click();
      link.remove();
    } catch (error) {
      FD.toast(error.message);
    }
  });

  document.getElementById("delete").addEventListener("click", async () => {
    if (!(await FD.confirmed(FD.t("confirm_delete")))) return;
    try {
      await FD.api("DELETE", "/api/me/data", { confirm: true });
      document.getElementById("main").replaceChildren(FD.el("p", { class: "card", role: "status" }, FD.t("deleted")));
    } catch (error) {
      FD.toast(error.message);
    }
  });
});
