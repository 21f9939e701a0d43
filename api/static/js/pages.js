/**
 * The list pages: Storage (volumes, with their instance, pool, state and size), Instances (host,
 * cluster, state, volumes) and Events. Each page is {load, show}: `load` asks the API, `show`
 * draws what it got, so that a slow answer for a page the user has left is simply dropped.
 * The Migrate buttons open the dialogs of migrate_volume.js and migrate_vm.js.
 */
import { call, fetchAll } from "./api.js";
import { openVmDialog } from "./migrate_vm.js";
import { openVolumeDialog } from "./migrate_volume.js";
import { $, bytes, el, updateTable, when } from "./ui.js";

/** What the pages last saw, by id: job rows and dialogs use it to name volumes and hosts. */
export const known = { volumes: new Map(), hosts: new Map(), vms: new Map() };
let learned = 0;

function remember(map, items) {
  for (const item of items) map.set(item.id, item);
}

/** List volumes and instances to name what jobs mention; at most every 30 s. */
export async function learnNames() {
  if (Date.now() - learned < 30000) return;
  learned = Date.now();
  const [volumes, vms] = await Promise.all([fetchAll("listVolumes", "volume"),
    fetchAll("listVirtualMachines", "virtualmachine")]);
  remember(known.volumes, volumes);
  remember(known.vms, vms);
}

function stateCell(state) {
  return el("td", { class: `state state-${String(state || "").toLowerCase()}` }, state || "—");
}

export const volumesPage = {
  async load() {
    const volumes = await fetchAll("listVolumes", "volume");
    remember(known.volumes, volumes);
    return volumes;
  },
  show(section, volumes) {
    const rows = volumes.map((v) => el("tr", { "data-id": v.id, "data-name": v.name },
      el("td", { class: "name" }, v.name),
      el("td", {}, v.type),
      el("td", {}, v.vmname || "(not attached)"),
      stateCell(v.vmstate),
      el("td", { class: "pool" }, v.storage || "—"),
      el("td", {}, v.storagetype),
      stateCell(v.state),
      el("td", { class: "num" }, bytes(v.size)),
      el("td", {}, v.diskofferingname),
      el("td", {}, el("button", {
        type: "button", class: "migrate", onclick: () => openVolumeDialog(v),
        title: v.vmname ? `Live-migrate ${v.name} to another pool` : "Only a volume attached to a running instance can be live-migrated",
      }, "Migrate…"))));
    updateTable($("#volumes-table", section), rows, "No volumes.");
  },
};

export const instancesPage = {
  async load() {
    const [vms, volumes, hosts] = await Promise.all([
      fetchAll("listVirtualMachines", "virtualmachine"),
      fetchAll("listVolumes", "volume"),
      fetchAll("listHosts", "host"),
    ]);
    remember(known.volumes, volumes);
    remember(known.hosts, hosts);
    remember(known.vms, vms);
    return { vms, volumes };
  },
  show(section, { vms, volumes }) {
    const byVm = new Map();
    for (const v of volumes) {
      if (!v.virtualmachineid) continue;
      if (!byVm.has(v.virtualmachineid)) byVm.set(v.virtualmachineid, []);
      byVm.get(v.virtualmachineid).push(v);
    }
    const rows = vms.map((vm) => {
      const host = known.hosts.get(vm.hostid);
      const own = byVm.get(vm.id) || [];
      return el("tr", { "data-id": vm.id, "data-name": vm.name },
        el("td", { class: "name" }, vm.name),
        stateCell(vm.state),
        el("td", { class: "host" }, vm.hostname || "—"),
        el("td", { class: "cluster" }, host ? host.clustername : "—"),
        el("td", {}, vm.serviceofferingname),
        el("td", { class: "volumes" }, own.length ? el("ul", { class: "plain" },
          own.map((v) => el("li", {}, `${v.name} (${v.storage || "?"}, ${v.storagetype}, ${bytes(v.size)})`)))
          : "none"),
        el("td", {}, el("button", {
          type: "button", class: "migrate", onclick: () => openVmDialog(vm, own, host),
          title: `Live-migrate ${vm.name} to another host`,
        }, "Migrate…")));
    });
    updateTable($("#instances-table", section), rows, "No instances.");
  },
};

const EVENTS_PAGE = 50;
let eventsPageNumber = 1;

export const eventsPage = {
  async load() {
    const body = await call("listEvents", { page: eventsPageNumber, pagesize: EVENTS_PAGE });
    return { total: body.count || 0, events: body.event || [], page: eventsPageNumber };
  },
  show(section, { total, events, page }) {
    const rows = events.map((e) => el("tr", { "data-id": e.id, class: `level-${(e.level || "").toLowerCase()}` },
      el("td", { class: "nowrap" }, when(e.created)),
      el("td", {}, e.level), el("td", {}, e.type), el("td", {}, e.state),
      el("td", {}, e.username), el("td", { class: "description" }, e.description)));
    updateTable($("#events-table", section), rows, "No events yet.");
    const pages = Math.max(1, Math.ceil(total / EVENTS_PAGE));
    $("#events-position", section).textContent = `page ${page} of ${pages} (${total} events, newest first)`;
    $("#events-newer", section).disabled = page <= 1;
    $("#events-older", section).disabled = page >= pages;
  },
  /** Move `step` pages (+1 older, -1 newer); the caller refreshes. */
  turn(step) {
    eventsPageNumber = Math.max(1, eventsPageNumber + step);
  },
};
