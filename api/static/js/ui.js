/**
 * Small DOM and formatting helpers shared by the console's pages and dialogs, and the two
 * banners (an error and a notice) through which nothing fails silently. Text from the API is
 * always inserted as text (textContent), never as HTML.
 */

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

/** Build an element: attributes (class, on<event> handlers, others as attributes; false/null
 * leave one out, true sets it empty) and children (nodes or text). */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** Replace a table body's rows; an empty list shows `empty` in one full-width row. */
export function fillTable(table, rows, empty) {
  const body = $("tbody", table);
  const columns = $$("thead th", table).length || 1;
  body.replaceChildren(...(rows.length ? rows
    : [el("tr", { class: "empty" }, el("td", { colspan: columns }, empty))]));
}

const keyOf = (row) => row.getAttribute("data-jobid") || row.getAttribute("data-id");

/** Like fillTable, for pages that refresh: a row whose key (data-jobid or data-id) is already
 * shown is updated in place, cell by cell, so that an unchanged button stays the same element
 * and a click that spans a refresh is not lost. */
export function updateTable(table, rows, empty) {
  const body = $("tbody", table);
  const shown = new Map($$(":scope > tr", body).filter(keyOf).map((row) => [keyOf(row), row]));
  if (!rows.length || !shown.size) {
    fillTable(table, rows, empty);
    return;
  }
  const next = rows.map((fresh) => {
    const row = shown.get(keyOf(fresh));
    if (!row) return fresh;
    patch(row, fresh);
    return row;
  });
  const now = Array.from(body.children);
  if (now.length !== next.length || now.some((row, index) => row !== next[index])) body.replaceChildren(...next);
}

function patch(row, fresh) {
  for (const { name } of Array.from(row.attributes)) if (!fresh.hasAttribute(name)) row.removeAttribute(name);
  for (const { name, value } of Array.from(fresh.attributes)) {
    if (row.getAttribute(name) !== value) row.setAttribute(name, value);
  }
  const cells = Array.from(row.children);
  const freshCells = Array.from(fresh.children);
  if (cells.length !== freshCells.length) {
    row.replaceChildren(...freshCells);
    return;
  }
  cells.forEach((cell, index) => {
    if (!cell.isEqualNode(freshCells[index])) cell.replaceWith(freshCells[index]);
  });
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

export function bytes(value) {
  let number = Number(value) || 0;
  let unit = 0;
  while (Math.abs(number) >= 1024 && unit < UNITS.length - 1) {
    number /= 1024;
    unit += 1;
  }
  return `${unit ? number.toFixed(1) : number} ${UNITS[unit]}`;
}

export function duration(seconds) {
  if (seconds === undefined || seconds === null) return "—";
  const total = Math.max(0, Math.round(Number(seconds)));
  if (total < 60) return `${total} s`;
  const minutes = Math.floor(total / 60);
  if (minutes < 60) return `${minutes} min ${total % 60} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** CloudStack's 2026-11-25T19:00:00+0000 as 2026-11-25 19:00:00 UTC. */
export function when(text) {
  if (!text) return "—";
  return text.replace("T", " ").replace("+0000", " UTC");
}

export function tags(text) {
  return text ? text.split(",").join(", ") : "none";
}

function banner(id, text) {
  const node = $(`#${id}`);
  $(".text", node).textContent = text;
  node.hidden = false;
}

let errorSource = null;

/** Show an error in words. `source` "poll" marks an error of a background refresh, which the
 * next successful refresh clears; other errors stay until dismissed. */
export function showError(error, source = "action") {
  const text = error && error.message ? error.message : String(error);
  if (source === "poll" && errorSource === "action" && !$("#error").hidden) return;
  errorSource = source;
  banner("error", text);
}

export function clearPollError() {
  if (errorSource === "poll") {
    $("#error").hidden = true;
    errorSource = null;
  }
}

export function clearError() {
  $("#error").hidden = true;
  errorSource = null;
}

export function showNotice(text) {
  banner("notice", text);
}

export function clearMessages() {
  clearError();
  $("#notice").hidden = true;
}
