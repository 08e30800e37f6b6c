/* A customer's own conversations, newest first; staff are sent to the inbox. */
"use strict";

FD.start(async (me) => {
  if (FD.isStaff(me)) { location.replace("/app/inbox"); return; }
  const list = document.getElementById("conversations");
  const more = document.getElementById("more");
  let cursor = null;

  async function load(append) {
    const query = new URLSearchParams({ limit: "30" });
    if (append && cursor) query.set("cursor", cursor);
    const page = await FD.api("GET", "/api/conversations?" + query);
    if (!append) list.replaceChildren();
    for (const conversation of page.conversations) list.append(FD.conversationRow(conversation, false));
    cursor = page.next_cursor;
    more.hidden = !cursor;
    FD.status(list.children.length ? "" : FD.t("empty_history"));
  }

  more.addEventListener("click", () => load(true).catch((error) => FD.toast(error.message)));
  await load(false);
  FD.live(() => load(false).catch(() => {}), () => load(false).catch(() => {}));
});
