/**
 * What both migrate dialogs share: opening (each opening gets a token, so an answer that arrives
 * after the dialog was closed or reopened is dropped), a status line, an error line that shows
 * the API's words, and an OK button that submits once and reports the new job to the page by a
 * "motion:job" event ({jobid, command, target}).
 */
import { $, el } from "./ui.js";

export class Dialog {
  constructor(id, onOk) {
    this.node = $(`#${id}`);
    this.okButton = $(".ok", this.node);
    this.token = 0;
    $(".cancel", this.node).addEventListener("click", () => this.node.close());
    this.okButton.addEventListener("click", () => onOk());
    this.node.addEventListener("close", () => { this.token += 1; });
  }

  /** Reset and show the dialog; returns the token of this opening. */
  open(title, subtitle) {
    this.token += 1;
    $("h2", this.node).textContent = title;
    $(".subtitle", this.node).textContent = subtitle;
    this.status("");
    this.error(null);
    this.okButton.disabled = true;
    $(".choices tbody", this.node).replaceChildren();
    if (!this.node.open) this.node.showModal();
    return this.token;
  }

  /** True while the opening `token` is the one on screen. */
  current(token) {
    return token === this.token && this.node.open;
  }

  status(text) {
    $(".status", this.node).textContent = text;
  }

  error(error) {
    const node = $(".dialog-error", this.node);
    node.textContent = error ? (error.message || String(error)) : "";
    node.hidden = !error;
  }

  allowOk(allowed) {
    this.okButton.disabled = !allowed;
  }

  /** Run `work` (which resolves to {jobid, command, target}); on success close the dialog and
   * announce the job, on failure keep the dialog open with the error in words. */
  async submit(token, what, work) {
    this.allowOk(false);
    this.error(null);
    this.status(`Sending ${what}…`);
    try {
      const job = await work();
      if (!job.jobid) throw new Error(`${what} answered without a job id`);
      if (this.current(token)) this.node.close();
      document.dispatchEvent(new CustomEvent("motion:job", { detail: job }));
    } catch (error) {
      if (!this.current(token)) throw error;
      this.status("");
      this.error(error);
      this.allowOk(true);
    }
  }
}

/** A list of reasons (why a pool or host cannot be chosen), or "Yes". */
export function verdict(suitable, reasons) {
  if (suitable) return el("td", { class: "verdict" }, "Yes");
  const list = reasons && reasons.length ? reasons : ["the server gave no reason"];
  return el("td", { class: "verdict" },
    el("span", { class: "no" }, "Not suitable:"),
    el("ul", { class: "reasons" }, list.map((reason) => el("li", {}, reason))));
}

/** A radio button inside a row; clicking anywhere on an enabled row selects it. */
export function selectableRow(name, value, enabled, attributes, cells, onSelect) {
  const radio = el("input", {
    type: "radio", name, value, disabled: !enabled, "aria-label": attributes["data-name"],
  });
  radio.addEventListener("change", onSelect);
  const row = el("tr", { ...attributes, class: enabled ? "suitable" : "unsuitable" },
    el("td", {}, radio), cells);
  if (enabled) {
    row.addEventListener("click", (event) => {
      if (event.target.closest("select, a, button")) return;
      if (!radio.checked) {
        radio.checked = true;
        onSelect();
      }
    });
  }
  return row;
}
