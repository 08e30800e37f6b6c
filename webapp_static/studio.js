/* The prompt studio's first page: my projects — create, rename, copy, reorder, export, import, delete. */
"use strict";

FD.start(async () => {
  const list = document.getElementById("projects");
  const create = document.getElementById("create");
  let projects = [];
  let limit = 0;

  function summary(project) {
    return [FD.t("studio_blocks_count", { context: project.context_blocks, prompts: project.prompt_blocks }),
            FD.t("studio_size_kb", { size: Math.max(1, Math.round(project.size / 1000)) }),
            FD.t("studio_changed", { when: FD.when(project.updated_at) })].join(" · ");
  }

  function action(act, label, extra) {
    return FD.el("button", { type: "button", class: "link", "data-act": act, ...extra }, label);
  }

  function projectRow(project, index) {
    const name = project.name;
    return FD.el("li", { "data-id": project.id, class: "project" },
      FD.el("a", { href: "/app/studio/project?id=" + project.id },
        FD.el("span", { class: "name" }, name),
        FD.el("span", { class: "preview" }, summary(project))),
      FD.el("span", { class: "moves" },
        action("up", "↑", { "aria-label": FD.t("studio_move_up_named", { name }), disabled: index === 0 }),
        action("down", "↓", { "aria-label": FD.t("studio_move_down_named", { name }),
                              disabled: index === projects.length - 1 })),
      FD.el("div", { class: "row tools project-tools" },
        action("rename", FD.t("studio_rename"), { "aria-label": FD.t("studio_rename_named", { name }) }),
        action("duplicate", FD.t("studio_duplicate"), { "aria-label": FD.t("studio_duplicate_named", { name }) }),
        action("export", FD.t("studio_export"), { "aria-label": FD.t("studio_export_named", { name }) }),
        action("delete", FD.t("delete"), { class: "link danger-text",
                                           "aria-label": FD.t("studio_delete_named", { name }) })));
  }

  function show(answer) {
    projects = answer.projects;
    limit = answer.limit;
    list.replaceChildren(...projects.map(projectRow));
    document.getElementById("count").textContent = projects.length
      ? FD.t("studio_projects_count", { count: projects.length, max: limit }) : "";
    FD.status(projects.length ? "" : FD.t("studio_no_projects"));
    create.hidden = false;
    document.getElementById("transfer").hidden = false;
  }

  async function load() { show(await FD.api("GET", "/api/studio/projects")); }

  /* Keeps keyboard focus on the same control of the same project after the list is drawn again. */
  function refocus(id, ...acts) {
    const row = list.querySelector(`li[data-id="${id}"]`);
    if (!row) return;
    const button = acts.map((act) => row.querySelector(`[data-act="${act}"]:not(:disabled)`)).find(Boolean);
    (button || row.querySelector("a")).focus();
  }

  function startRename(row, project) {
    const input = FD.el("input", { type: "text", name: "name", maxlength: "120", required: true, value: project.name,
                                   "aria-label": FD.t("studio_project_name") });
    const form = FD.el("form", { class: "row rename" }, input,
      FD.el("button", { type: "submit" }, FD.t("save")),
      FD.el("button", { type: "button", class: "secondary", "data-cancel": "" }, FD.t("studio_cancel")));
    row.replaceChildren(form);
    input.focus();
    input.select();
    form.querySelector("[data-cancel]").addEventListener("click", () => { show({ projects, limit }); refocus(project.id, "rename"); });
    form.addEventListener("keydown", (event) => {
      if (event.key === "Escape") { show({ projects, limit }); refocus(project.id, "rename"); }
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        const renamed = await FD.api("PATCH", `/api/studio/projects/${project.id}`, { name: input.value });
        projects = projects.map((p) => (p.id === renamed.id ? renamed : p));
        show({ projects, limit });
        refocus(project.id, "rename");
      } catch (error) {
        FD.toast(error.message);
      }
    });
  }

  async function download(project) {
    const response = await fetch(`/api/studio/projects/${project.id}/export`,
                                 { headers: FD.headers("GET"), credentials: "same-origin" });
    if (!response.ok) {
      const problem = (await response.json().catch(() => ({}))).error || {};
      throw new Error(problem.message || response.statusText);
    }
    // Named here rather than from Content-Disposition: the server sends a non-Latin name there as raw
    // UTF-8, which a browser's fetch reads as Latin-1.
    const filename = (project.name.replace(/[\\/:*?"<>|\u0000-\u001f]+/g, "-").trim() || "project") + ".json";
    const link = FD.el("a", { href: URL.createObjectURL(await response.blob()), download: filename });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  }

  async function move(project, by) {
    const ids = projects.map((p) => p.id);
    const from = ids.indexOf(project.id);
    const to = from + by;
    if (to < 0 || to >= ids.length) return;
    ids.splice(to, 0, ids.splice(from, 1)[0]);
    show(await FD.api("POST", "/api/studio/projects/order", { ids }));
    refocus(project.id, ...(by < 0 ? ["up", "down"] : ["down", "up"]));
  }

  list.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-act]");
    if (!button) return;
    const row = button.closest("li[data-id]");
    const project = projects.find((p) => p.id === Number(row.dataset.id));
    try {
      switch (button.dataset.act) {
        case "rename": startRename(row, project); break;
        case "duplicate": {
          const copy = await FD.api("POST", `/api/studio/projects/${project.id}/duplicate`);
          await load();
          FD.toast(FD.t("studio_duplicated", { name: copy.name }));
          refocus(copy.id, "rename");
          break;
        }
        case "export": await download(project); break;
        case "up": await move(project, -1); break;
        case "down": await move(project, 1); break;
        case "delete":
          if (!(await FD.confirmed(FD.t("studio_confirm_delete", { name: project.name })))) return;
          await FD.api("DELETE", `/api/studio/projects/${project.id}`);
          localStorage.removeItem(`fd-studio:${FD.me.id}:${project.id}`);
          await load();
          FD.toast(FD.t("studio_deleted", { name: project.name }));
          break;
        default: break;
      }
    } catch (error) {
      FD.toast(error.message);
      if (error.code === "bad_order") await load();
    }
  });

  create.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = create.querySelector("button");
    button.disabled = true;
    try {
      const project = await FD.api("POST", "/api/studio/projects", { name: create.elements.name.value });
      location.href = "/app/studio/project?id=" + project.id;
    } catch (error) {
      FD.toast(error.message);
      button.disabled = false;
    }
  });

  document.getElementById("import").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    if (!file) return;
    try {
      let payload;
      try {
        payload = JSON.parse(await file.text());
      } catch (error) {
        throw new Error(FD.t("studio_not_a_project_file"));
      }
      const project = await FD.api("POST", "/api/studio/projects/import", payload);
      await load();
      FD.toast(FD.t("studio_imported", { name: project.name }));
      refocus(project.id, "rename");
    } catch (error) {
      FD.toast(error.message);
    } finally {
      event.target.value = "";
    }
  });

  await load();
});
