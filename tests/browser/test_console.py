"""The web console in a real browser: the seed's UI flow for an admin, on a running embedded system.

Headless Chromium logs in, reads every page, migrates a volume from Storage and instances from
Instances (across clusters with storage, within a cluster without), and watches the jobs reach
success; unsuitable pools and hosts show their reasons and API refusals show in words. Every
page and dialog is saved as a screenshot under ``test-artifacts/screenshots/``. The tests share
one system (module scope); what one moves never changes what another expects, so their order
does not matter.
"""
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def logged_in(console, system):
    console.login(system.username, system.password)
    assert console.find("#nav").is_displayed(), console.find("#login-error").text
    console.goto("volumes")


def test_an_admin_logs_in_and_sees_volumes_instances_jobs_and_events(console, system):
    console.screenshot("1-login")
    logged_in(console, system)
    assert console.find("#username").text.startswith(system.username)

    volume = console.row_cells("volumes", "web-1-root")
    assert volume[:8] == ["web-1-root", "ROOT", "web-1", "Running", "a-gold-1", "shared", "Ready", "4.0 MiB"]
    console.screenshot("2-storage")

    console.goto("instances")
    vm = console.row_cells("instances", "app-1")
    assert vm[:5] == ["app-1", "Running", "hv-a2", "r2-cluster-a", "small-local"]
    assert "app-1-root (hv-a2-local, local, 8.0 MiB)" in vm[5] and "app-1-data (a-silver" in vm[5]
    console.screenshot("3-instances")

    console.goto("jobs")
    console.screenshot("4-jobs")

    console.goto("events")
    events = console.until(lambda: [r.text for r in console.find_all("#events-table tbody tr")
                                    if "USER.LOGIN" in r.text], "the login event")
    assert system.username in events[0]
    console.screenshot("5-events")
    assert console.banner() == ""

    sent = console.requests_sent()
    api_calls = [r for r in sent if "/client/api" in r["url"]]
    assert api_calls and all(r["method"] == "POST" and "sessionkey=" not in r["url"] for r in api_calls)
    assert any("sessionkey=" in r["body"] for r in api_calls)  # the key travels in the body only
    elsewhere = [r["url"] for r in sent
                 if r["url"].startswith(("http:", "https:", "ws:", "wss:")) and not r["url"].startswith(system.base_url + "/")]
    assert not elsewhere, elsewhere  # nothing from the network: no CDN, no fonts


def test_a_wrong_password_is_refused_in_words_and_opens_nothing(console, system):
    console.login(system.username, "not the password")
    error = console.find("#login-error").text
    assert "failed to authenticate user, check if username/password are correct" in error
    assert not console.find("#nav").is_displayed()
    console.screenshot("login-refused")


def test_the_storage_migrate_dialog_greys_out_an_unsuitable_pool_with_its_reason(console, system):
    logged_in(console, system)
    dialog = console.migrate("volumes", "web-1-root")
    silver = console.find('tr[data-name="a-silver"]', dialog)
    assert "unsuitable" in silver.get_attribute("class")
    assert not console.find("input[type=radio]", silver).is_enabled()
    assert ("storage tags do not match: volume needs [gold] (disk offering shared-gold), "
            "pool a-silver has [silver]") in silver.text
    suitable = [r.get_attribute("data-name") for r in console.find_all("tr.suitable", dialog)]
    assert suitable and "a-silver" not in suitable
    assert not console.find("button.ok", dialog).is_enabled()  # nothing chosen yet
    console.screenshot("pool-reasons")
    console.find("button.cancel", dialog).click()
    console.until(lambda: not dialog.is_displayed(), "the dialog to close")


def test_a_volume_migrates_from_the_storage_page_and_its_job_reaches_success(console, system):
    volume = system.by_name("listVolumes", "db-1-data")  # gold, on a-gold-2: a-gold-1 suits it
    logged_in(console, system)
    dialog = console.migrate("volumes", "db-1-data")
    console.find('tr[data-name="a-gold-1"]', dialog).click()
    console.screenshot("1-pool-chosen")
    console.find("button.ok", dialog).click()

    console.until(lambda: console.find("#jobs-page").is_displayed(), "the jobs page")
    jobid = console.new_job()
    assert jobid in console.banner("notice") and "migrateVolume accepted" in console.banner("notice")
    assert "db-1-data: a-gold-2 → a-gold-1" in console.text(console.job(jobid, "td.target"))
    # The copy runs at 1 MiB/s, so the job is still pending when its row is first drawn.
    assert console.job_status(jobid) == "pending"
    assert console.text(console.job(jobid, "td.phase")).split()[0] in ("queued", "dispatched")
    console.screenshot("2-job-submitted")
    moving = console.until(lambda: console.job_status(jobid) == "succeeded" or _copying(console, jobid),
                           "the job to progress", timeout=120)
    if moving is not True:  # seen mid-copy: the bar and the bytes copied so far
        assert "of 4.0 MiB" in moving["progress"], moving
        console.screenshot("3-job-progress")
    console.until(lambda: console.job_status(jobid) == "succeeded", "the job to succeed", timeout=120)
    assert console.find(console.job(jobid, "progress")).get_attribute("value") == "100"
    console.screenshot("4-job-succeeded")

    after = system.api.listVolumes(id=volume["id"])["volume"][0]
    assert (after["storage"], after["state"]) == ("a-gold-1", "Ready")
    console.goto("volumes")
    console.until(lambda: console.row_cells("volumes", "db-1-data")[4] == "a-gold-1",
                  "the volume on its new pool")
    assert console.banner() == ""


def _copying(console, jobid):
    """The job's progress cells while its copy is under way (between 1 and 99 %), else None."""
    row = console.find(console.job(jobid))
    value = int(console.find("progress", row).get_attribute("value") or 0)
    if row.get_attribute("data-status") == "pending" and 0 < value < 100:
        cells = {name: console.find(f"td.{name}", row).text for name in ("progress-col", "rate", "eta")}
        return {"progress": cells["progress-col"], "rate": cells["rate"], "eta": cells["eta"]}
    return None


def test_an_instance_migrates_across_clusters_with_a_pool_chosen_for_one_volume(console, system):
    vm = system.by_name("listVirtualMachines", "batch-1")  # hv-b2, cluster B
    logged_in(console, system)
    console.goto("instances")
    dialog = console.migrate("instances", "batch-1")

    target = console.find('tr[data-name="hv-a2"]', dialog)
    assert "Storage migration required" in target.text and "r2-cluster-a" in target.text
    legacy = console.find('tr[data-name="hv-old1"]', dialog)
    assert "unsuitable" in legacy.get_attribute("class")
    assert "hypervisor Hyperv 6.2 differs from the source host's Hyperv 6.3" in legacy.text
    same_cluster = console.find('tr[data-name="hv-b1"]', dialog)
    assert "No storage motion" in same_cluster.text

    target.click()
    choice = console.until(lambda: (f := console.find(".volume-choice", dialog)).is_displayed() and f,
                           "the per-volume pool choice")
    assert "migrateVirtualMachineWithVolume" in choice.text
    from selenium.webdriver.support.select import Select

    Select(console.find('tr[data-name="batch-1-data"] select', choice)).select_by_visible_text(
        "a-gold-1 (cluster, tags: gold)")
    console.screenshot("1-host-and-pool-chosen")
    console.find("button.ok", dialog).click()

    jobid = console.new_job()
    assert console.text(console.job(jobid, "td.command")) == "migrateVirtualMachineWithVolume"
    assert "batch-1: hv-b2 → hv-a2 (batch-1-data → a-gold-1)" in console.text(console.job(jobid, "td.target"))
    console.until(lambda: console.job_status(jobid) == "succeeded", "the VM job to succeed", timeout=180)
    console.screenshot("2-job-succeeded")

    moved = system.api.listVirtualMachines(id=vm["id"])["virtualmachine"][0]
    assert (moved["hostname"], moved["state"]) == ("hv-a2", "Running")
    pools = {v["name"]: v["storage"] for v in system.api.listVolumes(virtualmachineid=vm["id"], fetch_list=True)}
    assert pools["batch-1-data"] == "a-gold-1"
    assert pools["batch-1-root"] in {"a-gold-1", "a-gold-2", "a-silver", "zone-bulk"}  # placed automatically
    console.goto("instances")
    console.until(lambda: console.row_cells("instances", "batch-1")[2:4] == ["hv-a2", "r2-cluster-a"],
                  "the instance on its new host")
    console.screenshot("3-instance-moved")


def test_an_instance_moves_within_its_cluster_with_migrate_virtual_machine(console, system):
    vm = system.by_name("listVirtualMachines", "db-1")  # hv-a2; every pool of it reachable from hv-a1
    logged_in(console, system)
    console.goto("instances")
    dialog = console.migrate("instances", "db-1")
    target = console.find('tr[data-name="hv-a1"]', dialog)
    assert "No storage motion" in target.text
    target.click()
    plan = console.until(lambda: (f := console.find(".volume-choice", dialog)).is_displayed() and f.text,
                         "the plan")
    assert "No storage motion needed" in plan and "OK sends migrateVirtualMachine," in plan
    console.find("button.ok", dialog).click()

    jobid = console.new_job()
    assert console.text(console.job(jobid, "td.command")) == "migrateVirtualMachine"
    console.until(lambda: console.job_status(jobid) == "succeeded", "the VM job to succeed", timeout=120)
    moved = system.api.listVirtualMachines(id=vm["id"])["virtualmachine"][0]
    assert (moved["hostname"], moved["state"]) == ("hv-a1", "Running")
    console.screenshot("job-succeeded")


def test_an_api_refusal_shows_in_the_dialog_in_words(console, system):
    logged_in(console, system)
    console.goto("instances")
    dialog = console.migrate("instances", "legacy-1")
    error = console.find(".dialog-error", dialog).text
    assert "findHostsForMigration failed" in error and "(error 431)" in error
    assert "storage motion is not supported on Hyperv 6.2" in error
    assert not console.find("button.ok", dialog).is_enabled()
    console.screenshot("refused")


def test_a_local_volume_dialog_says_why_no_pool_is_listed(console, system):
    logged_in(console, system)
    dialog = console.migrate("volumes", "edge-1-root")
    status = console.until(lambda: "listed no pool" in (t := console.find(".status", dialog).text) and t,
                           "the explanation")
    assert "local storage" in status and "Instances" in status
    console.screenshot("local-volume")
