/**
 * The Jobs page: the latest migration jobs (listAsyncJobs), newest first, with status, phase
 * (queued with its place in line, dispatched), a progress bar from the bytes copied, rate, ETA,
 * the server's status text, per-volume progress, the error text of a failed job, and a Cancel
 * button (cancelAsyncJob) for a pending one. Jobs started from this console are named by what
 * they move; others by their result once finished.
 */
import { call, latest } from "./api.js";
import { known, learnNames } from "./pages.js";
import { $, bytes, duration, el, updateTable, showError, showNotice, when } from "./ui.js";

const SHOWN = 50;
const TARGETS = "motion.jobtargets";
let highlighted = null;
let scrolled = false;

/** Remember what a job started here moves (for the Target column) and show it highlighted. */
export function follow(job) {
  const targets = readTargets();
  targets[job.jobid] = job.target;
  const ids = Object.keys(targets);
  for (const id of ids.slice(0, Math.max(0, ids.length - 200))) delete targets[id];
  sessionStorage.setItem(TARGETS, JSON.stringify(targets));
  highlighted = job.jobid;
  scrolled = false;
}

function readTargets() {
  try {
    return JSON.parse(sessionStorage.getItem(TARGETS)) || {};
  } catch {
    return {};
  }
}

// CloudStack's command classes (the job's "cmd") by their API names.
const COMMANDS = {
  MigrateVolumeCmd: "migrateVolume", MigrateVolumeCmdByAdmin: "migrateVolume",
  MigrateVirtualMachineWithVolumeCmd: "migrateVirtualMachineWithVolume",
  MigrateVMCmd: "migrateVirtualMachine",
};

function commandName(cmd) {
  const last = String(cmd || "—").split(".").pop();
  return COMMANDS[last] || last;
}

function target(job, targets) {
  if (targets[job.jobid]) return targets[job.jobid];
  // CloudStack's jobinstancetype/jobinstanceid, when the server sends them.
  const instance = job.jobinstancetype === "Volume" ? known.volumes.get(job.jobinstanceid)
    : job.jobinstancetype === "VirtualMachine" ? known.vms.get(job.jobinstanceid) : null;
  if (instance) return `${job.jobinstancetype === "Volume" ? "volume" : "instance"} ${instance.name}`;
  const result = job.jobresult || {};
  if (result.volume) return `volume ${result.volume.name} (now on ${result.volume.storage})`;
  if (result.virtualmachine) return `instance ${result.virtualmachine.name} (now on ${result.virtualmachine.hostname})`;
  return "—";
}

function status(job) {
  if (job.jobstatus === 1) return "Succeeded";
  if (job.jobstatus === 2) return "Failed";
  return job.cancelrequested ? "Cancelling" : "Pending";
}

function percent(job) {
  if (job.jobstatus === 1) return 100;
  if (job.bytestotal) return Math.floor((100 * job.bytesdone) / job.bytestotal);
  return Number(job.jobprocstatus) || 0;
}

function details(job) {
  const lines = [];
  if (job.jobstatus === 2) lines.push((job.jobresult && job.jobresult.errortext) || "failed (no error text)");
  if (job.statustext) lines.push(job.statustext);
  for (const v of job.volumes || []) {
    const name = known.volumes.has(v.id) ? known.volumes.get(v.id).name : v.id;
    lines.push(`${name}: ${bytes(v.bytesDone)} of ${bytes(v.bytesTotal)} (${v.state})`);
  }
  return el("td", { class: "details" }, lines.map((line) => el("div", {}, line)));
}

function row(job, targets) {
  const pending = job.jobstatus === 0;
  const done = percent(job);
  const phase = !pending ? "—"
    : job.phase === "queued" && job.queueposition ? `queued (#${job.queueposition} in line)` : job.phase;
  const progressText = job.bytestotal ? `${done}% · ${bytes(job.bytesdone)} of ${bytes(job.bytestotal)}` : `${done}%`;
  const stateName = status(job).toLowerCase();
  return el("tr", {
    "data-jobid": job.jobid, "data-status": stateName,
    class: `job status-${stateName}${job.jobid === highlighted ? " highlight" : ""}`,
  },
  el("td", { class: "jobid", title: job.jobid }, job.jobid.slice(0, 8)),
  el("td", { class: "command" }, commandName(job.cmd)),
  el("td", { class: "target" }, target(job, targets)),
  el("td", { class: "status" }, status(job)),
  el("td", { class: "phase" }, phase),
  el("td", { class: "progress-col" },
    el("progress", { max: 100, value: done, "aria-label": `progress of job ${job.jobid}` }),
    el("span", { class: "progress-text" }, progressText)),
  el("td", { class: "num rate" }, pending && job.rate ? `${bytes(job.rate)}/s` : "—"),
  el("td", { class: "num eta" }, pending ? duration(job.eta) : "—"),
  details(job),
  el("td", { class: "nowrap" }, when(job.created)),
  el("td", {}, pending && !job.cancelrequested
    ? el("button", { type: "button", class: "cancel-job", onclick: () => askCancel(job, targets) }, "Cancel")
    : ""));
}

export const jobsPage = {
  async load() {
    const answer = await latest("listAsyncJobs", "asyncjobs", SHOWN);
    // Name the volumes and instances pending jobs mention, if no page has listed them yet.
    const unknown = answer.items.some((job) => job.jobstatus === 0 && (
      (job.volumes || []).some((v) => !known.volumes.has(v.id))
      || (job.jobinstanceid && !known.volumes.has(job.jobinstanceid) && !known.vms.has(job.jobinstanceid))));
    if (unknown) await learnNames();
    return answer;
  },
  show(section, { items }) {
    const targets = readTargets();
    updateTable($("#jobs-table", section), items.map((job) => row(job, targets)), "No jobs yet.");
    if (highlighted && !scrolled) {
      const node = $(`tr[data-jobid="${highlighted}"]`, section);
      if (node) {
        node.scrollIntoView({ block: "nearest", inline: "nearest" });
        scrolled = true;
      }
    }
  },
};

/* The cancel confirmation. */
const cancelDialog = $("#cancel-dialog");
let cancelling = null;
$(".cancel", cancelDialog).addEventListener("click", () => cancelDialog.close());
$(".ok", cancelDialog).addEventListener("click", confirmCancel);

function askCancel(job, targets) {
  cancelling = job;
  $(".subtitle", cancelDialog).textContent = `Job ${job.jobid}: ${commandName(job.cmd)}, ${target(job, targets)}.`;
  $(".dialog-error", cancelDialog).hidden = true;
  $(".ok", cancelDialog).disabled = false;
  cancelDialog.showModal();
}

async function confirmCancel() {
  const job = cancelling;
  const button = $(".ok", cancelDialog);
  button.disabled = true;
  try {
    const answer = await call("cancelAsyncJob", { jobid: job.jobid });
    cancelDialog.close();
    showNotice(answer.jobstatus === 0
      ? `Cancel requested for job ${job.jobid}: the copy is aborted at the agent's next heartbeat.`
      : `Job ${job.jobid} was cancelled${answer.jobresult && answer.jobresult.errortext ? `: ${answer.jobresult.errortext}` : "."}`);
    document.dispatchEvent(new CustomEvent("motion:refresh"));
  } catch (error) {
    const node = $(".dialog-error", cancelDialog);
    node.textContent = error.message;
    node.hidden = false;
    button.disabled = false;
    if (!cancelDialog.open) showError(error);
  }
}
