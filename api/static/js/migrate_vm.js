/**
 * Instances → Migrate: the seed's "Migrate virtual machine with volume" flow. The dialog lists
 * the hosts that findHostsForMigration answers, marks those where requiresStorageMotion is true
 * as "Storage migration required", and greys out unsuitable ones with the server's reasons.
 * Choosing a host offers an optional destination pool per volume (the pools that host can reach:
 * local pools of that host for a local volume, its cluster's and the zone's shared pools for a
 * shared one; the server checks the rest). OK sends migrateVirtualMachineWithVolume (with a
 * migrateto map of the chosen pools) when storage must or should move, otherwise
 * migrateVirtualMachine.
 */
import { call, fetchAll } from "./api.js";
import { Dialog, selectableRow, verdict } from "./dialog.js";
import { $, $$, el, fillTable, tags } from "./ui.js";

const dialog = new Dialog("vm-dialog", submit);
let current = null; // {vm, volumes, token, hosts, pools}

export async function openVmDialog(vm, volumes, sourceHost) {
  const where = sourceHost
    ? `Now on host ${vm.hostname} (cluster ${sourceHost.clustername}, ${sourceHost.hypervisor} ${sourceHost.hypervisorversion}), state ${vm.state}, ${volumes.length} volume(s).`
    : `Now on host ${vm.hostname || "—"}, state ${vm.state}, ${volumes.length} volume(s).`;
  const token = dialog.open(`Migrate instance ${vm.name}`, where);
  current = { vm, volumes, token, hosts: [], pools: null };
  $(".volume-choice", dialog.node).hidden = true;
  dialog.status("Asking which hosts can take this instance (findHostsForMigration)…");
  const poolsAnswer = fetchAll("listStoragePools", "storagepool", { zoneid: vm.zoneid })
    .catch((error) => error);
  let hosts;
  try {
    hosts = (await call("findHostsForMigration", { virtualmachineid: vm.id })).host || [];
  } catch (error) {
    if (dialog.current(token)) {
      dialog.status("");
      dialog.error(error);
    }
    return;
  }
  const pools = await poolsAnswer;
  if (!dialog.current(token)) return;
  current.hosts = hosts;
  current.pools = Array.isArray(pools) ? pools : null;
  const suitable = hosts.filter((h) => h.suitableformigration).length;
  let text = hosts.length
    ? `${suitable} of ${hosts.length} hosts can take ${vm.name}. Choose one and press OK; unsuitable hosts are greyed out with the reason.`
    : `findHostsForMigration listed no other host for ${vm.name}.`;
  if (!current.pools) text += ` (The per-volume pool choice is unavailable: ${pools.message}.)`;
  dialog.status(text);
  const rows = hosts.map((h) => selectableRow("vm-host", h.id, h.suitableformigration,
    { "data-id": h.id, "data-name": h.name }, [
      el("td", { class: "name" }, h.name),
      el("td", {}, h.clustername),
      el("td", {}, `${h.hypervisor} ${h.hypervisorversion}`),
      el("td", { class: "storage-motion" }, h.requiresStorageMotion
        ? el("span", { class: "badge" }, "Storage migration required") : "No storage motion"),
      el("td", {}, h.hasenoughcapacity ? "Enough" : "Not enough"),
      verdict(h.suitableformigration, h.reasons),
    ], () => chooseHost(h)));
  fillTable($(".choices", dialog.node), rows, "No host to show.");
}

/** The pools of `host`'s reach where `volume` may go (the server checks tags and room). */
function poolsFor(volume, host) {
  return (current.pools || []).filter((p) => {
    if (p.id === volume.storageid || p.state !== "Up") return false;
    if (volume.storagetype === "local") return p.scope === "HOST" && p.hostid === host.id;
    return p.scope === "ZONE" || (p.scope === "CLUSTER" && p.clusterid === host.clusterid);
  });
}

function chooseHost(host) {
  const { vm, volumes } = current;
  const fieldset = $(".volume-choice", dialog.node);
  $(".plan", fieldset).textContent = host.requiresStorageMotion
    ? `Storage migration required: ${host.name} cannot reach every pool of ${vm.name}'s volumes. OK sends migrateVirtualMachineWithVolume; a volume without a chosen pool stays where ${host.name} reaches it, otherwise goes to the roomiest suitable pool (local stays local, shared stays shared).`
    : `No storage motion needed: ${host.name} reaches every pool of ${vm.name}'s volumes. OK sends migrateVirtualMachine, or migrateVirtualMachineWithVolume if you choose a pool for a volume below.`;
  const rows = volumes.map((v) => {
    const options = poolsFor(v, host).map((p) => el("option", { value: p.id },
      `${p.name} (${p.scope.toLowerCase()}, tags: ${tags(p.tags)})`));
    const select = el("select", { "data-volume": v.id, "aria-label": `Destination pool for ${v.name}` },
      el("option", { value: "" }, "Automatic"), options);
    return el("tr", { "data-name": v.name },
      el("td", {}, v.name), el("td", {}, `${v.storage} (${v.storagetype})`), el("td", {}, select));
  });
  fillTable($("table", fieldset), rows, `${vm.name} has no volumes.`);
  fieldset.hidden = false;
  dialog.error(null);
  dialog.allowOk(true);
}

async function submit() {
  const { vm, token, hosts, volumes } = current || {};
  const chosen = $("input[name=vm-host]:checked", dialog.node);
  if (!vm || !chosen) {
    dialog.error("Choose a destination host first.");
    return;
  }
  const host = hosts.find((h) => h.id === chosen.value);
  const params = { virtualmachineid: vm.id, hostid: host.id };
  const moved = [];
  $$(".volume-choice select", dialog.node).filter((s) => s.value).forEach((select, index) => {
    params[`migrateto[${index}].volume`] = select.dataset.volume;
    params[`migrateto[${index}].pool`] = select.value;
    const volume = volumes.find((v) => v.id === select.dataset.volume);
    moved.push(`${volume ? volume.name : select.dataset.volume} → ${select.selectedOptions[0].textContent.split(" (")[0]}`);
  });
  const command = host.requiresStorageMotion || moved.length
    ? "migrateVirtualMachineWithVolume" : "migrateVirtualMachine";
  await dialog.submit(token, command, async () => {
    const body = await call(command, params);
    const detail = moved.length ? ` (${moved.join(", ")})` : "";
    return { jobid: body.jobid, command, target: `instance ${vm.name}: ${vm.hostname} → ${host.name}${detail}` };
  });
}
