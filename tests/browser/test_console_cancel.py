"""Cancelling a queued job from the console's Jobs page, in a real browser.

The system of its own copies at 0.25 MiB/s. Two migrations from db-1's host (sent with the cs
client) take its two storage-migration slots for at least 16 s; the third, started from the
Storage page, waits in the queue - where the admin cancels it.
"""
import pytest

from tests.browser.console import Console
from tests.conftest import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def test_a_queued_job_is_cancelled_from_the_jobs_page_and_its_volume_stays_put(slow_system, browser, request):
    api = slow_system.api
    volumes = {v["name"]: v for v in api.listVolumes(fetch_list=True)}
    gold = slow_system.by_name("listStoragePools", "a-gold-1")["id"]
    busy = [api.migrateVolume(volumeid=volumes[name]["id"], storageid=gold, livemigrate=True)["jobid"]
            for name in ("db-1-root", "db-1-data")]  # 8 and 4 MiB, both from host hv-a2
    try:
        wait_until(lambda: all(api.queryAsyncJobResult(jobid=j).get("phase") == "dispatched" for j in busy),
                   timeout=60, what="both slots of hv-a2 taken")

        console = Console(browser, slow_system.base_url, request.node.name)
        console.open()
        console.login(slow_system.username, slow_system.password)
        console.goto("volumes")
        dialog = console.migrate("volumes", "db-1-archive")
        console.find('tr[data-name="a-gold-1"]', dialog).click()
        console.find("button.ok", dialog).click()

        jobid = console.new_job()
        assert console.text(console.job(jobid, "td.phase")) == "queued (#1 in line)"
        # The worker says why it waits once it has tried to admit the job.
        console.until(lambda: "runs 2 storage migrations already" in console.find(console.job(jobid, "td.details")).text,
                      "the reason the job waits")
        console.screenshot("1-queued")

        console.click(console.job(jobid, "button.cancel-job"))
        confirm = console.until(lambda: (d := console.find("#cancel-dialog")).is_displayed() and d,
                                "the cancel confirmation")
        assert jobid in confirm.text
        console.screenshot("2-confirm")
        console.find("button.ok", confirm).click()

        console.until(lambda: console.job_status(jobid) == "failed", "the job to end cancelled")
        assert f"cancelled by {slow_system.username} while queued" in console.text(console.job(jobid, "td.details"))
        assert not console.find_all(console.job(jobid, "button.cancel-job"))
        assert "was cancelled" in console.banner("notice")
        console.screenshot("3-cancelled")

        after = api.listVolumes(id=volumes["db-1-archive"]["id"])["volume"][0]
        assert (after["storage"], after["state"]) == ("zone-bulk", "Ready")
        assert all(api.queryAsyncJobResult(jobid=j)["jobstatus"] in (0, 1) for j in busy)  # untouched
        assert console.banner() == ""
    finally:
        for j in busy:  # end the background copies so the system stops promptly
            if api.queryAsyncJobResult(jobid=j)["jobstatus"] == 0:
                api.cancelAsyncJob(jobid=j)
        wait_until(lambda: all(api.queryAsyncJobResult(jobid=j)["jobstatus"] != 0 for j in busy),
                   timeout=120, what="the background jobs to end")
