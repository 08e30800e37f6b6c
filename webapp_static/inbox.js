/* The staff inbox: filters, search, cursor paging, and rows that move to the top as things happen. */
"use strict";

FD.start(async (me) => {
  if (!FD.isStaff(me)) { location.replace("/app/"); return; }
  const form = document.getElementById("filters");
  const list = document.getElementById("conversations");
  const more = document.getElementById("more");
  let cursor = null;
  let generation = 0;

  function filters() {
    const data = new FormData(form);
    const query = new URLSearchParams({ view: data.get("view"), limit: "30" });
    if (data.get("q")) query.set("q", data.get("q"));
    if (data.get("channel")) query.set("channel", data.get("channel"));
    return query;
  }

  async function load(append) {
    const mine = ++generation;
    const query = filters();
    if (append && cursor) query.set("cursor", cursor);
    const page = await FD.api("GET", "/api/conversations?" + query);
    if (mine !== generation) return;  // a newer search started meanwhile
    if (!append) list.replaceChildren();
    for (const conversation of page.conversations) list.append(FD.conversationRow(conversation, true));
    cursor = page.next_cursor;
    more.hidden = !cursor;
    FD.status(list.children.length ? "" : FD.t("empty_inbox"));
  }

  /* A changed conversation: re-read it, and put it at the top if it still belongs to this view. */
  async function refresh(id) {
    const query = filters();
    query.set("limit", "1");
    let row;
    try {
      row = await FD.api("GET", "/api/conversations/" + id);
    } catch (error) {
      return;
    }
    const old = list.querySelector(`li[data-id="${id}"]`);
    if (old) old.remove();
    const view = query.get("view");
    const channel = query.get("channel");
    const fits = (view === "all" || row.state === view || (view === "mine" && row.state === "assigned"
      && row.assignee && row.assignee.id === me.id)) && (!channel || row.channel === channel) && !query.get("q");
    if (view === "mine" && !(row.assignee && row.assignee.id === me.id && row.state === "assigned")) return;
    if (!fits) return;
    const item = FD.conversationRow(row, true);
    item.classList.add("fresh");
    list.prepend(item);
    FD.status("");
  }

  let typing = null;
  form.addEventListener("input", (event) => {
    clearTimeout(typing);
    typing = setTimeout(() => load(false).catch((error) => FD.toast(error.message)),
      event.target.name === "q" ? 250 : 0);
  });
  form.addEventListener("submit", (event) => event.preventDefault());
  more.addEventListener("click", () => load(true).catch((error) => FD.toast(error.message)));
  await load(false);
  FD.live((id) => refresh(id), () => load(false).catch(() => {}));
});
