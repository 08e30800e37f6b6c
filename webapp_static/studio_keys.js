/* My own API keys for the prompt studio: the list (never a key, only its last four characters), adding
   one (the server first checks it with the provider and says why when it refuses), and deleting. */
"use strict";

FD.start(async () => {
  const section = document.getElementById("keys");
  const list = document.getElementById("key-list");
  const form = document.getElementById("new-key");
  const result = document.getElementById("check-result");
  const submit = form.querySelector("button[type=submit]");

  function keyRow(key) {
    const dates = [FD.t("key_added_on", { when: FD.when(key.created_at) })];
    if (key.last_used_at) dates.push(FD.t("key_used_on", { when: FD.when(key.last_used_at) }));
    return FD.el("li", { class: "key", "data-id": key.id },
      FD.el("div", { class: "key-head" },
        FD.el("span", { class: "name" }, key.name),
        FD.el("code", { class: "last4" }, "••••" + key.last4)),
      FD.el("span", { class: "preview url" }, key.base_url),
      FD.el("span", { class: "models" }, key.models.join(", ")),
      FD.el("span", { class: "preview small" }, dates.join(" · ")),
      key.readable ? null : FD.el("p", { class: "error small" }, FD.t("key_unreadable")),
      FD.el("div", { class: "row" },
        FD.el("button", { type: "button", class: "danger", "data-act": "delete" }, FD.t("delete"))));
  }

  function show(data) {
    list.replaceChildren(...data.keys.map(keyRow));
    const empty = document.getElementById("keys-empty");
    empty.textContent = FD.t("keys_none");
    empty.hidden = data.keys.length > 0;
    document.getElementById("keys-count").textContent = FD.t("keys_count",
      { count: data.keys.length, max: data.max_keys });
    submit.disabled = data.keys.length >= data.max_keys;
    section.hidden = false;
    form.hidden = false;
  }

  function say(text, kind) {
    result.textContent = text;
    result.className = "check-result " + (kind || "");
    result.hidden = !text;
  }

  show(await FD.api("GET", "/api/studio/keys"));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = form.elements;
    const body = { name: data.name.value.trim(), base_url: data.base_url.value.trim(), api_key: data.api_key.value,
                   models: data.models.value.split(/[\s,]+/).filter(Boolean) };
    submit.disabled = true;
    say(FD.t("key_checking"), "pending");
    try {
      await FD.api("POST", "/api/studio/keys", body);
      form.reset();
      say(FD.t("key_added"), "ok");
      show(await FD.api("GET", "/api/studio/keys"));
    } catch (error) {
      say(error.message, "error");
      submit.disabled = false;
    }
  });

  list.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-act=delete]");
    if (!button) return;
    const item = button.closest("li");
    const name = item.querySelector(".name").textContent;
    if (!(await FD.confirmed(FD.t("key_confirm_delete", { name })))) return;
    button.disabled = true;
    try {
      show(await FD.api("DELETE", "/api/studio/keys/" + item.dataset.id));
      say("", "");
      FD.toast(FD.t("key_deleted"));
    } catch (error) {
      button.disabled = false;
      FD.toast(error.message);
    }
  });
});
