/* Context blocks: named lists of texts a prompt refers to as {{@Block name}}; only ticked items go in. */

import { changed } from "./autosave.js";
import { renderRefs } from "./prompts.js";
import { $, contextBlock, freeName, moveIn, newKey, state } from "./state.js";

const contextBox = $("context-blocks");
const collapsed = new Set();  // context blocks folded away

function selectedCount(block) { return block.items.filter((item) => item.selected).length; }

function moveButtons(kind, label, index, count) {
  return FD.el("span", { class: "moves" },
    FD.el("button", { type: "button", class: "link", "data-act": kind + "-up", disabled: index === 0,
                      "aria-label": FD.t("studio_move_up_named", { name: label }) }, "↑"),
    FD.el("button", { type: "button", class: "link", "data-act": kind + "-down", disabled: index === count - 1,
                      "aria-label": FD.t("studio_move_down_named", { name: label }) }, "↓"),
    FD.el("button", { type: "button", class: "link danger-text", "data-act": kind + "-delete",
                      "aria-label": FD.t("studio_delete_named", { name: label }) }, "✕"));
}

function itemRow(block, item, index) {
  const label = item.title.trim() || FD.t("studio_item_n", { n: index + 1 });
  return FD.el("li", { class: "ctx-item" + (item.selected ? "" : " off"), "data-item": item.id },
    FD.el("div", { class: "item-head" },
      FD.el("input", { type: "checkbox", "data-field": "selected", checked: item.selected,
                       "aria-label": FD.t("studio_use_item", { name: label }) }),
      FD.el("input", { type: "text", "data-field": "title", value: item.title, maxlength: "200",
                       placeholder: FD.t("studio_item_title"), "aria-label": FD.t("studio_item_title_of", { n: index + 1 }) }),
      moveButtons("item", label, index, block.items.length)),
    (() => {
      const text = FD.el("textarea", { "data-field": "text", rows: "3", maxlength: "100000",
                                       placeholder: FD.t("studio_item_text"),
                                       "aria-label": FD.t("studio_item_text_of", { n: index + 1 }) });
      text.value = item.text;
      return text;
    })());
}

/* The item's controls are named after its title, which the person may be typing. */
function relabelItem(row, item, index) {
  const name = item.title.trim() || FD.t("studio_item_n", { n: index + 1 });
  row.querySelector('[data-field="selected"]').setAttribute("aria-label", FD.t("studio_use_item", { name }));
  for (const [act, key] of [["item-up", "studio_move_up_named"], ["item-down", "studio_move_down_named"],
                            ["item-delete", "studio_delete_named"]]) {
    row.querySelector(`[data-act="${act}"]`).setAttribute("aria-label", FD.t(key, { name }));
  }
}

function contextCard(block, index) {
  const name = block.name;
  const items = FD.el("ol", { class: "ctx-items" }, ...block.items.map((item, i) => itemRow(block, item, i)));
  const details = FD.el("details", { class: "ctx", "data-block": block.id, open: !collapsed.has(block.id) },
    FD.el("summary", {},
      FD.el("span", { class: "ctx-title" }, name || "…"),
      FD.el("span", { class: "badge", "data-count": "" },
            FD.t("studio_selected_of", { selected: selectedCount(block), total: block.items.length }))),
    FD.el("div", { class: "row ctx-head" },
      FD.el("label", { class: "grow" }, FD.el("span", { class: "field-label" }, FD.t("studio_context_name")),
        FD.el("input", { type: "text", "data-field": "name", value: name, maxlength: "60", autocomplete: "off" })),
      moveButtons("block", name, index, state.doc.context_blocks.length)),
    FD.el("p", { class: "hint ref" }, FD.t("studio_reference_is", { ref: `{{@${name.trim()}}}` })),
    items,
    FD.el("button", { type: "button", class: "secondary small-button", "data-act": "item-add",
                      disabled: block.items.length >= state.limits.max_items }, "+ " + FD.t("studio_item")));
  details.addEventListener("toggle", () => {
    if (details.open) collapsed.delete(block.id); else collapsed.add(block.id);
  });
  return details;
}

/* Draws the context blocks again, then focuses the first of `focus` (selectors) that exists. */
export function renderContext(...focus) {
  contextBox.replaceChildren(...state.doc.context_blocks.map(contextCard));
  $("add-context").disabled = state.doc.context_blocks.length >= state.limits.max_blocks;
  renderRefs();
  for (const selector of focus) {
    const target = contextBox.querySelector(selector);
    if (target) { target.focus(); break; }
  }
}

function refreshContextHeader(card, block) {
  card.querySelector(".ctx-title").textContent = block.name || "…";
  card.querySelector("[data-count]").textContent =
    FD.t("studio_selected_of", { selected: selectedCount(block), total: block.items.length });
  card.querySelector(".ref").textContent = FD.t("studio_reference_is", { ref: `{{@${block.name.trim()}}}` });
  for (const [act, key] of [["block-up", "studio_move_up_named"], ["block-down", "studio_move_down_named"],
                            ["block-delete", "studio_delete_named"]]) {
    card.querySelector(`.ctx-head [data-act="${act}"]`).setAttribute("aria-label", FD.t(key, { name: block.name }));
  }
}

export function wireContext() {
  contextBox.addEventListener("input", (event) => {
    const field = event.target.dataset.field;
    const card = event.target.closest("[data-block]");
    if (!field || !card) return;
    const block = contextBlock(card.dataset.block);
    const row = event.target.closest("[data-item]");
    if (row) {
      const item = block.items.find((candidate) => candidate.id === row.dataset.item);
      if (field === "selected") {
        item.selected = event.target.checked;
        row.classList.toggle("off", !item.selected);
      } else {
        item[field] = event.target.value;
        if (field === "title") relabelItem(row, item, block.items.indexOf(item));
      }
    } else if (field === "name") {
      block.name = event.target.value;
      event.target.setAttribute("aria-invalid", String(!block.name.trim() || /[{}@]/.test(block.name)));
      renderRefs();
    }
    refreshContextHeader(card, block);
    changed();
  });

  contextBox.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-act]");
    if (!button) return;
    const card = button.closest("[data-block]");
    const blockIndex = state.doc.context_blocks.findIndex((block) => block.id === card.dataset.block);
    const block = state.doc.context_blocks[blockIndex];
    const row = button.closest("[data-item]");
    const itemIndex = row ? block.items.findIndex((item) => item.id === row.dataset.item) : -1;
    const item = row ? block.items[itemIndex] : null;
    const where = (selector) => `[data-block="${block.id}"] ${selector}`;
    switch (button.dataset.act) {
      case "item-add": {
        const created = { id: newKey(), title: "", text: "", selected: true };
        block.items.push(created);
        changed();
        renderContext(where(`[data-item="${created.id}"] [data-field="title"]`));
        break;
      }
      case "item-up": case "item-down": {
        const by = button.dataset.act === "item-up" ? -1 : 1;
        if (moveIn(block.items, itemIndex, by)) {
          changed();
          renderContext(where(`[data-item="${item.id}"] [data-act="${button.dataset.act}"]:not(:disabled)`),
                        where(`[data-item="${item.id}"] [data-field="title"]`));
        }
        break;
      }
      case "item-delete": {
        const hasText = item.title.trim() || item.text.trim();
        if (hasText && !(await FD.confirmed(FD.t("studio_confirm_delete_item",
                                                 { name: item.title.trim() || FD.t("studio_item_n", { n: itemIndex + 1 }) })))) return;
        block.items.splice(itemIndex, 1);
        changed();
        renderContext(where("[data-act=item-add]"));
        break;
      }
      case "block-up": case "block-down": {
        if (moveIn(state.doc.context_blocks, blockIndex, button.dataset.act === "block-up" ? -1 : 1)) {
          changed();
          renderContext(where(`.ctx-head [data-act="${button.dataset.act}"]:not(:disabled)`),
                        where(".ctx-head [data-act^=block]:not(:disabled)"));
        }
        break;
      }
      case "block-delete": {
        if (!(await FD.confirmed(FD.t("studio_confirm_delete_context", { name: block.name, count: block.items.length })))) return;
        state.doc.context_blocks.splice(blockIndex, 1);
        collapsed.delete(block.id);
        changed();
        renderContext();
        $("add-context").focus();
        break;
      }
      default: break;
    }
  });

  $("add-context").addEventListener("click", () => {
    const block = { id: newKey(), name: freeName(FD.t("studio_default_context"), state.doc.context_blocks.map((b) => b.name)),
                    items: [{ id: newKey(), title: "", text: "", selected: true }] };
    state.doc.context_blocks.push(block);
    changed();
    renderContext(`[data-block="${block.id}"] [data-field="name"]`);
  });
}
