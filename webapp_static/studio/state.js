/* What the prompt studio's editor modules share: the project as edited on this page, and helpers
   on its document. Modules call each other only once the page has started (FD.start), never while
   they load, so the imports between them may go both ways. */

export const $ = (id) => document.getElementById(id);

export const state = {
  projectId: 0,
  storageKey: "",          // where this device keeps the unsaved changes (per person and project)
  limits: { max_blocks: 50, max_items: 500 },
  projectName: "",
  doc: null,               // the document as edited here
  base: 0,                 // the server's revision `doc` is based on
  dirty: false,            // edits the server has not got yet
  offline: false,          // the last attempt could not reach the server
  retryable: false,        // the last refusal was the server's trouble (5xx): try again later
  problem: "",             // why the last save was refused, shown as "Not saved: …"
  conflict: null,          // {revision}: saved elsewhere, waiting for the person's choice
  activeId: null,          // the prompt block being edited
  models: [],
  versions: [],
  chosenVersion: null,
};

// --- the document ---------------------------------------------------------------------------------

export function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_");
}

export function freeName(stem, taken) {
  const names = new Set(taken.map((name) => name.trim().toLowerCase()));
  if (!names.has(stem.toLowerCase())) return stem;
  for (let n = 2; ; n += 1) if (!names.has(`${stem} ${n}`.toLowerCase())) return `${stem} ${n}`;
}

export function active() { return state.doc.prompt_blocks.find((block) => block.id === state.activeId) || null; }
export function contextBlock(id) { return state.doc.context_blocks.find((block) => block.id === id); }

export function moveIn(list, index, by) {
  const to = index + by;
  if (to < 0 || to >= list.length) return false;
  list.splice(to, 0, list.splice(index, 1)[0]);
  return true;
}
