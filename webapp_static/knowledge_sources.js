/* The knowledge page's documents and websites: upload a file (with its progress), add a web address,
   and the list of sources with their status, refreshed every 2 s while one is queued or indexing.
   knowledge.js calls FDSources.start() once the caller is known. */
"use strict";

const FDSources = (() => {
  const POLL_MS = 2000;
  const MAX_PAGES = 1000;  // the service's most pages for one website (SourcePolicy.max_page_limit)
  const list = document.getElementById("source-list");
  const empty = document.getElementById("sources-empty");
  const listError = document.getElementById("sources-error");
  const fileInput = document.getElementById("source-file");
  const progress = document.getElementById("upload-progress");
  const progressLabel = document.getElementById("upload-label");
  const progressBar = document.getElementById("upload-bar");
  const uploadError = document.getElementById("upload-error");
  const urlForm = document.getElementById("url-form");
  const urlError = document.getElementById("url-error");
  let shown = new Map();  // id -> the JSON its row was drawn from
  let timer = null;

  function showError(box, text) {
    box.textContent = text || "";
    box.hidden = !text;
  }

  function busy(source) { return source.status === "queued" || source.status === "indexing"; }

  /* "synced 5 min ago" within a day, else the date. Our own words rather than Intl's: browsers without
     Uzbek data write "-5 min" and "M12 3". */
  const lang = document.documentElement.lang || "en";
  function synced(iso) {
    const date = new Date(iso);
    const minutes = Math.floor((Date.now() - date.getTime()) / 60000);
    if (minutes < 1) return FD.t("src_synced_just_now");
    if (minutes < 60) return FD.t("src_synced_minutes", { count: minutes });
    if (minutes < 24 * 60) return FD.t("src_synced_hours", { count: Math.floor(minutes / 60) });
    return FD.t("src_synced", { when: date.toLocaleDateString(lang) });
  }

  function counted(key, count) {
    return FD.t(count === 1 ? key + "_one" : key, { count });
  }

  function statusLine(source) {
    const line = FD.el("div", { class: "source-status" });
    if (source.status === "indexing") {
      const known = source.progress_total > 0;
      line.append(FD.el("span", { class: "badge src-indexing" }, known
        ? FD.t("src_indexing", { done: source.progress_done, total: source.progress_total })
        : FD.t("src_indexing_started")));
      if (known) {
        line.append(" ", FD.el("progress", { class: "source-bar", max: source.progress_total,
          value: Math.min(source.progress_done, source.progress_total), "aria-hidden": "true" }));
      }
    } else if (source.status === "ready") {
      const details = [counted("src_passages", source.chunk_count)];
      if (source.kind === "site") details.push(counted("src_pages", source.page_count));
      if (source.last_synced_at) details.push(synced(source.last_synced_at));
      line.append(FD.el("span", { class: "badge src-ready" }, FD.t("src_ready")), " ",
        FD.el("span", { class: "muted", title: source.last_synced_at ? new Date(source.last_synced_at).toLocaleString(lang) : null },
          details.join(" · ")));
    } else if (source.status === "failed") {
      line.append(FD.el("span", { class: "badge src-failed" }, FD.t("src_failed")), " ",
        FD.el("span", { class: "error source-reason" }, source.error || ""));
    } else {
      line.append(FD.el("span", { class: "badge src-queued" }, FD.t("src_queued")));
    }
    return line;
  }

  function location(source) {
    const kind = FD.el("span", { class: "source-kind" }, FD.t("src_kind_" + source.kind));
    const where = !/^https?:\/\//i.test(source.location) ? FD.el("span", { class: "source-where" }, source.location)
      : FD.el("a", { class: "source-where", href: source.location, target: "_blank", rel: "noopener" }, source.location);
    return FD.el("div", { class: "source-location small" }, kind, " · ", where);
  }

  function sourceRow(source) {
    const rowError = FD.el("p", { class: "error small", role: "alert", hidden: true });
    const toggle = FD.el("input", { type: "checkbox", "data-act": "enabled", checked: source.enabled });
    toggle.addEventListener("change", async () => {
      showError(rowError, "");
      try {
        await FD.api("PATCH", `/api/knowledge/sources/${source.id}`, { enabled: toggle.checked });
        row.classList.toggle("off", !toggle.checked);
      } catch (error) { toggle.checked = !toggle.checked; showError(rowError, error.message); }
    });
    const actions = FD.el("span", { class: "source-actions" });
    if ((source.kind !== "file" || source.status === "failed") && !busy(source)) {
      const resync = FD.el("button", { type: "button", class: "link", "data-act": "resync" }, FD.t("src_resync"));
      resync.addEventListener("click", async () => {
        showError(rowError, "");
        resync.disabled = true;
        try {
          await FD.api("POST", `/api/knowledge/sources/${source.id}/sync`);
          await refresh();
        } catch (error) { resync.disabled = false; showError(rowError, error.message); }
      });
      actions.append(resync);
    }
    const remove = FD.el("button", { type: "button", class: "link danger-text", "data-act": "delete" }, FD.t("delete"));
    remove.addEventListener("click", async () => {
      if (!(await FD.confirmed(FD.t("src_confirm_delete", { title: source.title })))) return;
      showError(rowError, "");
      try {
        await FD.api("DELETE", `/api/knowledge/sources/${source.id}`);
        row.remove();
        shown.delete(source.id);
        empty.hidden = shown.size > 0;
      } catch (error) { showError(rowError, error.message); }
    });
    actions.append(remove);
    const tools = FD.el("div", { class: "row tools" }, FD.el("label", { class: "switch" }, toggle, FD.t("src_use")),
                        actions);
    const row = FD.el("li", { class: "source" + (source.enabled ? "" : " off"), "data-id": source.id,
                              "data-status": source.status },
      FD.el("div", { class: "item" },
        FD.el("div", { class: "source-title" }, source.title || source.location),
        location(source), statusLine(source)),
      tools, rowError);
    return row;
  }

  /* Draw the list: rows whose source did not change stay as they are (focus and all). */
  function draw(sources) {
    const next = new Map();
    const focused = document.activeElement && list.contains(document.activeElement)
      ? { id: document.activeElement.closest("li").dataset.id, act: document.activeElement.dataset.act } : null;
    const rows = sources.map((source) => {
      const json = JSON.stringify(source);
      next.set(source.id, json);
      const old = list.querySelector(`li[data-id="${source.id}"]`);
      return old && shown.get(source.id) === json ? old : sourceRow(source);
    });
    if (rows.length !== list.children.length || rows.some((row, n) => list.children[n] !== row)) {
      list.replaceChildren(...rows);
    }
    shown = next;
    empty.hidden = sources.length > 0;
    if (focused && focused.act) {
      const again = list.querySelector(`li[data-id="${focused.id}"] [data-act="${focused.act}"]`);
      if (again && document.activeElement !== again) again.focus();
    }
  }

  async function refresh() {
    clearTimeout(timer);
    timer = null;
    let sources;
    try {
      sources = (await FD.api("GET", "/api/knowledge/sources")).sources;
      showError(listError, "");
    } catch (error) {
      showError(listError, error.message);
      schedule(inProgress());  // something was being read: try again
      return;
    }
    draw(sources);
    schedule(sources.some(busy));
  }

  function schedule(needed) {
    clearTimeout(timer);
    timer = needed ? setTimeout(() => { if (!document.hidden) refresh(); else timer = null; }, POLL_MS) : null;
    list.dataset.refreshing = needed ? "yes" : "no";  // whether the list will be asked for again
  }

  function inProgress() { return list.querySelector('li[data-status="queued"], li[data-status="indexing"]') !== null; }

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && timer === null && inProgress()) refresh();
  });

  /* The file is the request's body, so the bar can follow the upload (fetch cannot report it). */
  function send(file) {
    return new Promise((resolve, reject) => {
      const request = new XMLHttpRequest();
      request.open("POST", "/api/knowledge/sources/file?name=" + encodeURIComponent(file.name));
      for (const [name, value] of Object.entries(FD.headers("POST", false))) request.setRequestHeader(name, value);
      request.setRequestHeader("Content-Type", file.type || "application/octet-stream");
      request.upload.onprogress = (event) => {
        if (!event.lengthComputable) return;
        const percent = Math.floor((event.loaded / event.total) * 100);
        progressBar.value = percent;
        progressLabel.textContent = percent < 100 ? FD.t("src_uploading", { name: file.name, percent })
          : FD.t("src_reading", { name: file.name });
      };
      request.upload.onload = () => { progressBar.value = 100; progressLabel.textContent = FD.t("src_reading", { name: file.name }); };
      request.onload = () => {
        let data = {};
        try { data = JSON.parse(request.responseText); } catch (error) { data = {}; }
        if (request.status >= 200 && request.status < 300) { resolve(data); return; }
        const problem = data.error || {};
        reject(new FD.ApiError(request.status, problem.code || "error",
                               problem.message || FD.t("src_upload_failed"), problem.details));
      };
      request.onerror = () => reject(new FD.ApiError(0, "network", FD.t("src_upload_failed")));
      request.onabort = request.onerror;
      request.send(file);
    });
  }

  fileInput.addEventListener("change", async () => {
    const file = fileInput.files[0];
    if (!file) return;
    showError(uploadError, "");
    progressBar.value = 0;
    progressLabel.textContent = FD.t("src_uploading", { name: file.name, percent: 0 });
    progress.hidden = false;
    fileInput.disabled = true;
    try {
      await send(file);
      await refresh();
    } catch (error) {
      showError(uploadError, error.message);
    } finally {
      progress.hidden = true;
      fileInput.disabled = false;
      fileInput.value = "";
    }
  });

  function showScope() {
    const site = urlForm.elements.scope.value === "site";
    document.getElementById("page-limit").hidden = !site;
    document.getElementById("scope-hint").hidden = !site;
  }
  for (const radio of urlForm.elements.scope) radio.addEventListener("change", showScope);

  urlForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError(urlError, "");
    let url = urlForm.elements.url.value.trim();
    if (url && !url.includes("://")) url = "https://" + url;  // "shop.example" is meant as a website
    const wholeSite = urlForm.elements.scope.value === "site";
    const limit = urlForm.elements.page_limit.value.trim();
    if (wholeSite && limit && !(/^\d+$/.test(limit) && Number(limit) >= 1 && Number(limit) <= MAX_PAGES)) {
      showError(urlError, FD.t("src_bad_page_limit", { limit: MAX_PAGES }));
      return;
    }
    const body = { url, whole_site: wholeSite, page_limit: wholeSite && limit ? Number(limit) : null };
    const button = urlForm.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await FD.api("POST", "/api/knowledge/sources/url", body);
      urlForm.elements.url.value = "";
      await refresh();
    } catch (error) {
      showError(urlError, error.message);
    } finally {
      button.disabled = false;
    }
  });

  showScope();
  return { start: refresh };
})();
