/* The admins' settings: working hours and the offline text, the AI's models, limits, widget sites
   and the team's roles. Each form saves its own section; the server validates and answers with
   the settings as stored, which the page shows again. */
"use strict";

FD.start(async (me) => {
  if (me.role !== "admin") { FD.status(FD.t("admins_only")); return; }
  const sections = document.getElementById("sections");
  let settings = null;

  async function saving(button, work) {
    button.disabled = true;
    try {
      await work();
      FD.toast(FD.t("saved"));
    } catch (error) {
      FD.toast(error.message);
    } finally {
      button.disabled = false;
    }
  }

  function show(section) {
    document.getElementById("toast").hidden = true;  // it spoke of another section
    for (const card of sections.querySelectorAll("[data-section]")) card.hidden = card.dataset.section !== section;
    const radio = sections.querySelector(`input[name=section][value="${section}"]`);
    if (radio) radio.checked = true;
  }

  /* --- working hours ---------------------------------------------------------------------------- */

  const hours = document.getElementById("hours-form");
  const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
  const hoursText = hours.elements.working_hours;

  /* An error said where it is: under the field, which is marked invalid, until it is changed. */
  function fieldError(id, field, text) {
    const box = document.getElementById(id);
    box.textContent = text || "";
    box.hidden = !text;
    if (field) field.setAttribute("aria-invalid", text ? "true" : "false");
  }

  function clearHoursErrors() {
    for (const day of DAYS) fieldError("error-" + day, hours.elements["end_" + day], "");
    fieldError("hours-error", hoursText, "");
    fieldError("timezone-error", hours.elements.timezone, "");
  }

  /* The picker from the server's openings (one period a day; more than one: the text stays the truth). */
  function showWeek(openings) {
    const byDay = {};
    for (const opening of openings) (byDay[opening.day] = byDay[opening.day] || []).push(opening);
    const several = Object.values(byDay).some((list) => list.length > 1);
    for (const day of DAYS) {
      const opening = (byDay[day] || [])[0];
      hours.elements["open_" + day].checked = Boolean(opening);
      if (opening) {
        hours.elements["start_" + day].value = opening.start;
        hours.elements["end_" + day].value = opening.end === "24:00" ? "23:59" : opening.end;
      }
    }
    document.getElementById("week").disabled = several;
    document.getElementById("hours-text").open = several;
    markDays();
  }

  function markDays() {
    for (const day of DAYS) {
      const open = hours.elements["open_" + day].checked;
      hours.querySelector(`.day[data-day="${day}"]`).classList.toggle("closed", !open);
      for (const side of ["start_", "end_"]) hours.elements[side + day].disabled = !open;
    }
  }

  /* The picker as text: days in a row with the same hours become one range ("mon-fri 09:00-18:00"). */
  function weekText() {
    const parts = [];
    let run = null;
    for (const day of DAYS) {
      const open = hours.elements["open_" + day].checked;
      const times = open ? `${hours.elements["start_" + day].value}-${hours.elements["end_" + day].value}` : null;
      if (run && times === run.times) { run.last = day; continue; }
      if (run) parts.push(run);
      run = times ? { first: day, last: day, times } : null;
    }
    if (run) parts.push(run);
    return parts.map((p) => `${p.first === p.last ? p.first : p.first + "-" + p.last} ${p.times}`).join(", ");
  }

  function checkWeek() {
    let fine = true;
    for (const day of DAYS) {
      if (!hours.elements["open_" + day].checked) continue;
      const start = hours.elements["start_" + day].value, end = hours.elements["end_" + day].value;
      const problem = !start || !end ? FD.t("hours_need_times") : end <= start ? FD.t("hours_end_before_start") : "";
      fieldError("error-" + day, hours.elements["end_" + day], problem);
      fine = fine && !problem;
    }
    return fine;
  }

  function showHours() {
    const current = settings.hours;
    hoursText.value = current.working_hours;
    showWeek(current.openings);
    const zones = hours.elements.timezone;
    if (!zones.options.length) {
      const groups = {};
      for (const zone of settings.timezones) {
        const region = zone.includes("/") ? zone.split("/")[0] : "";
        (groups[region] = groups[region] || []).push(zone);
      }
      for (const [region, list] of Object.entries(groups)) {
        const options = list.map((zone) => FD.el("option", { value: zone }, zone.replace(/_/g, " ")));
        zones.append(region ? FD.el("optgroup", { label: region }, ...options) : options[0]);
      }
    }
    if (![...zones.options].some((option) => option.value === current.timezone)) {
      zones.append(FD.el("option", { value: current.timezone }, current.timezone));
    }
    zones.value = current.timezone;
    for (const locale of Object.keys(current.offline_text)) {  // the server's languages: one list, there
      const field = hours.elements["offline_" + locale];
      field.value = current.offline_text[locale];
      field.placeholder = current.default_offline_text[locale];
    }
    document.getElementById("hours-now").textContent = current.always_open ? FD.t("hours_always")
      : FD.t(current.open_now ? "hours_open" : "hours_closed");
  }

  hours.addEventListener("change", (event) => {
    const name = event.target.name || "";
    if (/^(open|start|end)_/.test(name)) {
      markDays();
      fieldError("error-" + name.split("_")[1], hours.elements["end_" + name.split("_")[1]], "");
      if (checkWeek()) hoursText.value = weekText();
      fieldError("hours-error", hoursText, "");
    } else if (name === "working_hours") {
      fieldError("hours-error", hoursText, "");
    } else if (name === "timezone") {
      fieldError("timezone-error", hours.elements.timezone, "");
    }
  });

  hours.addEventListener("submit", (event) => {
    event.preventDefault();
    clearHoursErrors();
    if (!document.getElementById("week").disabled && !checkWeek()) return;
    const button = event.submitter || hours.querySelector("button[type=submit]");
    button.disabled = true;
    (async () => {
      try {
        const data = hours.elements;
        settings = await FD.api("PUT", "/api/admin/settings/hours", {
          working_hours: hoursText.value, timezone: data.timezone.value,
          offline_text: Object.fromEntries(Object.keys(settings.hours.offline_text)
            .map((locale) => [locale, data["offline_" + locale].value])) });
        showHours();
        FD.toast(FD.t("saved"));
      } catch (error) {
        // The server says which field is wrong: the message stays beside it, not only in the toast.
        if (error.code === "bad_hours") {
          document.getElementById("hours-text").open = true;
          fieldError("hours-error", hoursText, error.message);
          hoursText.focus();
        } else if (error.code === "bad_timezone") {
          fieldError("timezone-error", hours.elements.timezone, error.message);
        } else {
          FD.toast(error.message);
        }
      } finally {
        button.disabled = false;
      }
    })();
  });

  /* --- the AI's models -------------------------------------------------------------------------- */

  const ai = document.getElementById("ai-form");
  const routes = document.getElementById("routes");

  function routeItem(route, used) {
    return FD.el("li", { "data-key": route.key },
      FD.el("label", { class: "route" },
        FD.el("input", { type: "checkbox", checked: used, "aria-label": FD.t("ai_use", { model: route.model }) }),
        FD.el("span", { class: "name" }, route.model),
        FD.el("span", { class: "preview" }, FD.el("span", { class: "role" }), " · " + route.provider)),
      FD.el("span", { class: "moves" },
        FD.el("button", { type: "button", class: "link", "data-move": "-1", "aria-label": FD.t("move_up") }, "↑"),
        FD.el("button", { type: "button", class: "link", "data-move": "1", "aria-label": FD.t("move_down") }, "↓")));
  }

  function markRoles() {
    let place = 0;
    for (const item of routes.children) {
      const used = item.querySelector("input").checked;
      item.classList.toggle("unused", !used);
      item.querySelector(".role").textContent = !used ? FD.t("ai_unused")
        : place++ === 0 ? FD.t("ai_primary") : FD.t("ai_fallback", { n: place - 1 });
    }
  }

  function showModels() {
    const models = settings.ai;
    document.getElementById("ai-off").hidden = models.enabled;
    document.getElementById("ai-buttons").hidden = !models.enabled;
    const byKey = Object.fromEntries(models.routes.map((route) => [route.key, route]));
    const ordered = models.order.map((key) => byKey[key]).filter(Boolean);
    const rest = models.routes.filter((route) => !models.order.includes(route.key));
    routes.replaceChildren(...ordered.map((route) => routeItem(route, true)),
                           ...rest.map((route) => routeItem(route, false)));
    markRoles();
  }

  routes.addEventListener("change", markRoles);
  routes.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-move]");
    if (!button) return;
    const item = button.closest("li");
    if (button.dataset.move === "-1" && item.previousElementSibling) item.previousElementSibling.before(item);
    if (button.dataset.move === "1" && item.nextElementSibling) item.nextElementSibling.after(item);
    markRoles();
    button.focus();
  });
  ai.addEventListener("submit", (event) => {
    event.preventDefault();
    const order = [...routes.children].filter((item) => item.querySelector("input").checked)
      .map((item) => item.dataset.key);
    if (!order.length) { FD.toast(FD.t("ai_need_one")); return; }
    saving(event.submitter || ai.querySelector("button"), async () => {
      settings = await FD.api("PUT", "/api/admin/settings/ai", { order });
      showModels();
    });
  });
  document.getElementById("ai-reset").addEventListener("click", (event) => {
    saving(event.target, async () => {
      settings = await FD.api("PUT", "/api/admin/settings/ai", { order: [] });
      showModels();
    });
  });

  /* --- limits ----------------------------------------------------------------------------------- */

  const limits = document.getElementById("limits-form");

  function showLimits() {
    for (const name of ["daily_ai_quota", "burst", "per_minute"]) {
      const field = limits.elements[name];
      const own = settings.limits.overrides[name];
      field.value = own === null ? "" : own;
      field.placeholder = settings.limits.defaults[name];
    }
  }

  limits.addEventListener("submit", (event) => {
    event.preventDefault();
    const body = {};
    for (const name of ["daily_ai_quota", "burst", "per_minute"]) {
      const value = limits.elements[name].value.trim();
      body[name] = value === "" ? null : Number(value);
    }
    saving(event.submitter || limits.querySelector("button"), async () => {
      settings = await FD.api("PUT", "/api/admin/settings/limits", body);
      showLimits();
    });
  });

  /* --- widget sites ----------------------------------------------------------------------------- */

  const sites = document.getElementById("site-list");

  function fullColor(value, fallback) {  // <input type=color> wants #rrggbb
    if (/^#[0-9a-f]{3}$/i.test(value)) return "#" + [...value.slice(1)].map((c) => c + c).join("");
    return /^#[0-9a-f]{6}$/i.test(value) ? value : fallback;
  }

  let overlapHours = 24;  // the deployment's WIDGET_SECRET_OVERLAP_HOURS, from the site list

  // 2026-03-01 14:05 in the reader's time: the same in every language (browsers lack Uzbek date data).
  function moment(iso) {
    const date = new Date(iso);
    const two = (n) => String(n).padStart(2, "0");
    return `${date.getFullYear()}-${two(date.getMonth() + 1)}-${two(date.getDate())} ` +
      `${two(date.getHours())}:${two(date.getMinutes())}`;
  }

  function showSecret(form, shown) {
    form.querySelector("[data-field=secret]").hidden = !shown;
    form.querySelector("[data-act=copy-secret]").hidden = !shown;
    form.querySelector("[data-act=secret]").textContent = FD.t(shown ? "hide" : "show");
  }

  async function copy(text) {
    try {
      await navigator.clipboard.writeText(text);
      FD.toast(FD.t("copied"));
    } catch (error) {
      FD.toast(FD.t("copy_failed"));
    }
  }

  function siteBody(form) {
    const data = form.elements;
    return { allowed_origins: data.allowed_origins.value.split(/[\s,]+/).filter(Boolean),
             title: data.title.value, color: data.color.value, text_color: data.text_color.value,
             greeting: data.greeting.value };
  }

  function fillSite(form, site) {
    const data = form.elements;
    data.allowed_origins.value = site.allowed_origins.join("\n");
    data.allowed_origins.rows = Math.max(2, site.allowed_origins.length);
    data.title.value = site.title;
    data.color.value = fullColor(site.color, "#2563eb");
    data.text_color.value = fullColor(site.text_color, "#ffffff");
    data.greeting.value = site.greeting;
    form.querySelector("[data-field=embed]").textContent = site.embed;
    form.querySelector("[data-field=secret]").textContent = site.secret;
    const previous = form.querySelector("[data-field=previous]");
    const until = site.previous_secret_until;
    previous.textContent = until ? FD.t("site_old_secret_until", { when: moment(until) }) : "";
    previous.hidden = !until;
    if (!data.overlap_hours.value) data.overlap_hours.value = String(overlapHours);
    form.querySelector(".site-title").textContent = site.title || site.public_key;
    form.querySelector(".site-key").textContent = site.public_key;
  }

  function siteForm(site) {
    const form = FD.el("form", { class: "site", "data-id": site.id },
      FD.el("div", { class: "row spread" }, FD.el("strong", { class: "site-title" }),
        FD.el("code", { class: "site-key" })));
    form.append(document.getElementById("site-fields").content.cloneNode(true));
    form.append(document.getElementById("site-extras").content.cloneNode(true));
    form.append(FD.el("div", { class: "row" }, FD.el("button", { type: "submit" }, FD.t("save")),
      FD.el("button", { type: "button", class: "danger", "data-act": "remove" }, FD.t("site_remove"))));
    fillSite(form, site);
    return form;
  }

  function showSites(list) {
    sites.replaceChildren(...list.map(siteForm));
    if (!list.length) sites.append(FD.el("p", { class: "muted" }, FD.t("sites_none")));
  }

  sites.addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.target;
    saving(event.submitter || form.querySelector("button[type=submit]"), async () => {
      fillSite(form, await FD.api("PATCH", "/api/admin/sites/" + form.dataset.id, siteBody(form)));
    });
  });
  sites.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-act]");
    if (!button) return;
    const form = button.closest("form");
    if (button.dataset.act === "copy") {
      await copy(form.querySelector("[data-field=embed]").textContent);
    } else if (button.dataset.act === "copy-secret") {
      await copy(form.querySelector("[data-field=secret]").textContent);
    } else if (button.dataset.act === "secret") {
      showSecret(form, form.querySelector("[data-field=secret]").hidden);
    } else if (button.dataset.act === "rotate") {
      const field = form.elements.overlap_hours;
      if (!field.reportValidity()) return;
      const hours = field.value === "" ? overlapHours : Number(field.value);
      const name = form.querySelector(".site-title").textContent;
      if (!(await FD.confirmed(FD.t("site_confirm_rotate", { name, hours })))) return;
      button.disabled = true;
      try {
        fillSite(form, await FD.api("POST", "/api/admin/sites/" + form.dataset.id + "/secret",
                                    { overlap_hours: hours }));
        showSecret(form, true);  // shown at once, to be copied to the website's server
        FD.toast(FD.t("site_secret_rotated"));
      } catch (error) {
        FD.toast(error.message);
      } finally {
        button.disabled = false;
      }
    } else if (button.dataset.act === "remove") {
      const name = form.querySelector(".site-title").textContent;
      if (!(await FD.confirmed(FD.t("site_confirm_remove", { name })))) return;
      try {
        showSites((await FD.api("DELETE", "/api/admin/sites/" + form.dataset.id)).sites);
        FD.toast(FD.t("site_removed"));
      } catch (error) {
        FD.toast(error.message);
      }
    }
  });

  const newSite = document.getElementById("new-site");
  newSite.append(document.getElementById("site-fields").content.cloneNode(true),
                 FD.el("button", { type: "submit" }, FD.t("site_add")));
  newSite.addEventListener("submit", (event) => {
    event.preventDefault();
    saving(event.submitter || newSite.querySelector("button"), async () => {
      const site = await FD.api("POST", "/api/admin/sites", siteBody(newSite));
      newSite.reset();
      document.getElementById("add-site").open = false;
      if (!sites.querySelector("form")) sites.replaceChildren();
      const form = siteForm(site);
      sites.append(form);
      form.scrollIntoView({ block: "nearest" });
    });
  });

  /* --- the team --------------------------------------------------------------------------------- */

  const team = document.getElementById("team-list");

  /* What an admin can make each member next: approve a newcomer, or move between the roles. */
  const NEXT_ROLES = {
    pending: [["manager", "approve_manager"], ["viewer", "approve_viewer"]],
    viewer: [["manager", "make_manager"]],
    manager: [["admin", "make_admin"], ["viewer", "make_viewer"]],
    admin: [["manager", "make_manager"]],
  };

  function memberRow(member) {
    const label = member.owner ? FD.t("role_owner") : FD.t("role_" + member.role);
    const details = ["#" + member.telegram_id];
    if (member.username) details.unshift("@" + member.username);
    if (member.invited) details.push(FD.t("member_invited"));
    const badge = { admin: "assigned", pending: "waiting" }[member.role] || "";
    const item = FD.el("li", { "data-id": member.id ?? "" },
      FD.el("div", { class: "member" },
        FD.el("span", { class: "name" }, member.name, " ", FD.el("span", { class: "badge " + badge }, label)),
        FD.el("span", { class: "preview" }, details.join(" · "))));
    if (member.id !== null) {
      const actions = FD.el("div", { class: "row member-actions" });
      if (!member.owner) {
        for (const [role, text] of NEXT_ROLES[member.role] || []) {
          actions.append(FD.el("button", { type: "button", class: role === "viewer" ? "secondary" : "", "data-role": role },
            FD.t(text)));
        }
      }
      actions.append(FD.el("button", { type: "button", class: "secondary", "data-sign-out": "1" },
        FD.t("sign_out_member")));
      if (!member.owner && member.id !== me.id) {
        actions.append(FD.el("button", { type: "button", class: "danger", "data-remove": member.name },
          FD.t("member_remove")));
      }
      item.append(actions);
    }
    return item;
  }

  const invites = document.getElementById("invites");

  function inviteRow(invite) {
    const parts = [FD.t("invite_item", { role: FD.t("role_" + invite.role), name: invite.created_by || "—",
                                         when: FD.when(invite.expires_at) })];
    if (invite.opened) parts.push(FD.t("invite_opened"));
    return FD.el("li", { "data-invite": invite.id },
      FD.el("span", { class: "preview" }, parts.join(" · ")),
      FD.el("button", { type: "button", class: "secondary", "data-cancel": invite.id }, FD.t("invite_cancel")));
  }

  function showTeam(data) {
    team.replaceChildren(...data.members.map(memberRow));
    invites.replaceChildren(...data.invites.map(inviteRow));
    document.getElementById("invites-title").hidden = !data.invites.length;
    document.getElementById("invite-off").hidden = data.can_invite;
    document.getElementById("invite-form").hidden = !data.can_invite;
  }

  async function loadTeam() {
    showTeam(await FD.api("GET", "/api/admin/staff"));
  }

  team.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-role], button[data-sign-out], button[data-remove]");
    if (!button) return;
    const id = button.closest("li").dataset.id;
    const name = button.dataset.remove;
    if (name && !(await FD.confirmed(FD.t("member_confirm_remove", { name })))) return;
    button.disabled = true;
    try {
      const data = name ? await FD.api("DELETE", `/api/admin/staff/${id}`)
        : button.dataset.signOut ? await FD.api("POST", `/api/admin/staff/${id}/sign-out`, {})
        : await FD.api("PUT", `/api/admin/staff/${id}/role`, { role: button.dataset.role });
      showTeam(data);
      FD.toast(name ? FD.t("member_removed", { name }) : FD.t(button.dataset.signOut ? "signed_out_member" : "saved"));
    } catch (error) {
      FD.toast(error.message);
      button.disabled = false;
    }
  });

  document.getElementById("invite-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = event.target.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const made = await FD.api("POST", "/api/admin/staff/invites", { role: event.target.elements.role.value });
      showTeam(made.team);
      document.getElementById("invite-made").textContent = FD.t("invite_made", { when: FD.when(made.invite.expires_at) });
      document.getElementById("invite-link").value = made.link;
      document.getElementById("invite-result").hidden = false;
    } catch (error) {
      FD.toast(error.message);
    } finally {
      button.disabled = false;
    }
  });
  document.getElementById("invite-copy").addEventListener("click", () => copy(document.getElementById("invite-link").value));
  document.getElementById("invite-link").addEventListener("focus", (event) => event.target.select());
  invites.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-cancel]");
    if (!button) return;
    button.disabled = true;
    try {
      showTeam(await FD.api("DELETE", `/api/admin/staff/invites/${encodeURIComponent(button.dataset.cancel)}`));
      document.getElementById("invite-result").hidden = true;
      FD.toast(FD.t("invite_cancelled"));
    } catch (error) {
      FD.toast(error.message);
      button.disabled = false;
    }
  });

  /* --- the business's name (its own form and endpoint) ------------------------------------------ */

  const business = document.getElementById("business-form");
  business.addEventListener("submit", (event) => {
    event.preventDefault();
    saving(event.submitter || business.querySelector("button"), async () => {
      const saved = await FD.api("PUT", "/api/admin/business", { business_name: business.elements.business_name.value });
      business.elements.business_name.value = saved.business_name;
    });
  });
  FD.api("GET", "/api/admin/business").then((data) => { business.elements.business_name.value = data.business_name; },
    (error) => FD.toast(error.message));

  /* --- start ------------------------------------------------------------------------------------ */

  const [loaded, siteList] = await Promise.all([FD.api("GET", "/api/admin/settings"), FD.api("GET", "/api/admin/sites"),
                                                loadTeam()]);
  settings = loaded;
  showHours();
  showModels();
  showLimits();
  overlapHours = siteList.secret_overlap_hours;
  showSites(siteList.sites);
  sections.hidden = false;
  const fromHash = () => {
    const wanted = location.hash.slice(1);
    show(["hours", "ai", "limits", "sites", "team"].includes(wanted) ? wanted : "hours");
  };
  fromHash();
  window.addEventListener("hashchange", fromHash);
  sections.querySelector(".segmented").addEventListener("change", (event) => {
    show(event.target.value);
    history.replaceState(null, "", "#" + event.target.value);
  });
});
