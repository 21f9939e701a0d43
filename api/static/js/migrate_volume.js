/**
 * Storage → Migrate: the seed's "Migrating volume" flow. The dialog lists the pools that
 * findStoragePoolsForMigration answers; suitable ones can be chosen, unsuitable ones are greyed
 * out with the server's reasons. OK sends migrateVolume (livemigrate=true: the instance keeps
 * running) and the page follows the new job.
 */
import { call } from "./api.js";
import { Dialog, selectableRow, verdict } from "./dialog.js";
import { $, bytes, el, fillTable, tags } from "./ui.js";

const dialog = new Dialog("volume-dialog", submit);
let current = null; // {volume, token, pools}

function free(pool) {
  const factor = Number(pool.overprovisionfactor) || 1;
  return pool.disksizetotal * factor - pool.disksizeallocated;
}

/** Why findStoragePoolsForMigration listed nothing, in words (it answers an empty list, as
 * CloudStack does, for a volume that cannot move on its own). */
function whyNone(v) {
  const head = `findStoragePoolsForMigration listed no pool for ${v.name}. `;
  if (v.storagetype === "local") {
    return head + "It is on local storage: a local volume moves only together with its instance (Instances → Migrate).";
  }
  if (!v.virtualmachineid) return head + "It is not attached to an instance; only a volume of a running instance can be live-migrated.";
  if (v.vmstate && v.vmstate !== "Running") {
    return head + `Its instance ${v.vmname} is ${v.vmstate}; only a volume of a running instance can be live-migrated.`;
  }
  if (v.state !== "Ready") return head + `It is ${v.state}; a volume can move only when it is Ready.`;
  return head + "Its host's hypervisor may not support storage motion, or no other shared pool is reachable from its host.";
}

export async function openVolumeDialog(volume) {
  const where = volume.vmname
    ? `Attached to ${volume.vmname} (${volume.vmstate}); now on pool ${volume.storage}, ${bytes(volume.size)}, disk offering ${volume.diskofferingname}.`
    : `Not attached to an instance; now on pool ${volume.storage}.`;
  const token = dialog.open(`Migrate volume ${volume.name}`, where);
  current = { volume, token, pools: [] };
  dialog.status("Asking which pools can take this volume (findStoragePoolsForMigration)…");
  let pools;
  try {
    pools = (await call("findStoragePoolsForMigration", { id: volume.id })).storagepool || [];
  } catch (error) {
    if (dialog.current(token)) {
      dialog.status("");
      dialog.error(error);
    }
    return;
  }
  if (!dialog.current(token)) return;
  current.pools = pools;
  const suitable = pools.filter((p) => p.suitableformigration).length;
  dialog.status(pools.length
    ? `${suitable} of ${pools.length} pools can take ${volume.name}. Choose one and press OK; unsuitable pools are greyed out with the reason.`
    : whyNone(volume));
  const rows = pools.map((p) => selectableRow("volume-pool", p.id, p.suitableformigration,
    { "data-id": p.id, "data-name": p.name }, [
      el("td", { class: "name" }, p.name),
      el("td", {}, p.scope),
      el("td", {}, p.clustername || (p.scope === "ZONE" ? "(zone-wide)" : "—")),
      el("td", {}, tags(p.tags)),
      el("td", {}, p.state),
      el("td", { class: "num" }, bytes(free(p))),
      verdict(p.suitableformigration, p.reasons),
    ], () => dialog.allowOk(true)));
  fillTable($(".choices", dialog.node), rows, "No pool to show.");
}

async function submit() {
  const { volume, token, pools } = current || {};
  const chosen = $("input[name=volume-pool]:checked", dialog.node);
  if (!volume || !chosen) {
    dialog.error("Choose a destination pool first.");
    return;
  }
  const pool = pools.find((p) => p.id === chosen.value);
  await dialog.submit(token, "migrateVolume", async () => {
    const body = await call("migrateVolume", { volumeid: volume.id, storageid: pool.id, livemigrate: true });
    return {
      jobid: body.jobid, command: "migrateVolume",
      target: `volume ${volume.name}: ${volume.storage} → ${pool.name}`,
    };
  });
}
