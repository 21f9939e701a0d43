/**
 * The console's entry point: login and logout, the pages (#volumes, #instances, #jobs,
 * #events) and their refresh loop (Jobs every second, the others every five seconds), and the
 * error banner that every failure reaches - an API refusal, an unreachable server, a bug of ours
 * (uncaught errors and rejections) - so that nothing fails silently. A 401 means the session is
 * over: the login form comes back and says so.
 */
import { call, session, whenSessionLost } from "./api.js";
import { follow, jobsPage } from "./jobs.js";
import { eventsPage, instancesPage, volumesPage } from "./pages.js";
import { $, $$, clearError, clearMessages, clearPollError, showError, showNotice } from "./ui.js";

const PAGES = {
  volumes: { view: volumesPage, every: 5000 },
  instances: { view: instancesPage, every: 5000 },
  jobs: { view: jobsPage, every: 1000 },
  events: { view: eventsPage, every: 5000 },
};
const ROLES = { 0: "user", 1: "root admin", 2: "domain admin" };
let timer = null;
let generation = 0;

function pageName() {
  const name = location.hash.replace(/^#/, "");
  return PAGES[name] ? name : "volumes";
}

function showOnly(id) {
  for (const section of $$("main > .page")) section.hidden = section.id !== id;
}

/** Load the current page and draw it, then schedule the next refresh. An answer that arrives
 * after the user moved on (a newer generation) is dropped. */
async function refresh() {
  clearTimeout(timer);
  if (!session.get()) return;
  const mine = ++generation;
  const name = pageName();
  const section = $(`#${name}-page`);
  try {
    const data = await PAGES[name].view.load();
    if (mine !== generation) return;
    PAGES[name].view.show(section, data);
    $(".updated", section).textContent = `updated ${new Date().toLocaleTimeString()}`;
    clearPollError();
  } catch (error) {
    if (mine === generation && session.get()) showError(error, "poll");
  } finally {
    if (mine === generation && session.get()) timer = setTimeout(refresh, PAGES[name].every);
  }
}

function route() {
  if (!session.get()) {
    showLogin();
    return;
  }
  const name = pageName();
  showOnly(`${name}-page`);
  for (const link of $$("#nav a")) link.classList.toggle("active", link.dataset.page === name);
  refresh();
}

function showLogin(message) {
  clearTimeout(timer);
  generation += 1;
  $("#nav").hidden = true;
  $("#whoami").hidden = true;
  showOnly("login-page");
  const error = $("#login-error");
  error.textContent = message || "";
  error.hidden = !message;
  $("#login-password").value = "";
  $("#login-username").focus();
}

function showSignedIn() {
  const current = session.get();
  $("#username").textContent = `${current.username} (${ROLES[current.type] || current.type})`;
  $("#nav").hidden = false;
  $("#whoami").hidden = false;
  route();
}

async function login(event) {
  event.preventDefault();
  const button = $("#login-submit");
  button.disabled = true;
  $("#login-error").hidden = true;
  try {
    const answer = await call("login", {
      username: $("#login-username").value,
      password: $("#login-password").value,
      domain: $("#login-domain").value || "/",
    });
    session.set({ sessionkey: answer.sessionkey, username: answer.username, type: String(answer.type) });
    if (String(answer.type) !== "1") {
      const role = ROLES[answer.type] || `account type ${answer.type}`;
      await call("logout").catch(() => null);
      session.clear();
      showLogin(`This console is for root admins; ${answer.username} is a ${role}. `
        + "Ask a root admin, or use the API with your keys.");
      return;
    }
    clearMessages();
    showSignedIn();
  } catch (error) {
    session.clear();
    showLogin(error.code === 531 ? `Login failed: ${error.text}` : error.message);
  } finally {
    button.disabled = false;
  }
}

async function logout() {
  try {
    await call("logout");
  } catch (error) {
    showError(error);
  }
  session.clear();
  clearMessages();
  showLogin("You are logged out.");
}

function wire() {
  $("#login-form").addEventListener("submit", login);
  $("#logout").addEventListener("click", logout);
  for (const button of $$(".banner .dismiss")) {
    button.addEventListener("click", () => {
      button.parentElement.hidden = true;
      if (button.parentElement.id === "error") clearError();
    });
  }
  for (const button of $$(".page .refresh")) button.addEventListener("click", refresh);
  $("#events-newer").addEventListener("click", () => { eventsPage.turn(-1); refresh(); });
  $("#events-older").addEventListener("click", () => { eventsPage.turn(1); refresh(); });
  window.addEventListener("hashchange", route);
  document.addEventListener("motion:refresh", refresh);
  document.addEventListener("motion:job", (event) => {
    const job = event.detail;
    follow(job);
    showNotice(`${job.command} accepted: job ${job.jobid} (${job.target}). Its progress is below.`);
    if (location.hash === "#jobs") refresh();
    else location.hash = "#jobs";
  });
  window.addEventListener("error", (event) => showError(`Console error: ${event.message}`));
  window.addEventListener("unhandledrejection", (event) => {
    const reason = event.reason;
    showError(reason && reason.message ? reason.message : `Console error: ${reason}`);
  });
  whenSessionLost((error) => {
    session.clear();
    showLogin(`Your session has ended (${error.text}); log in again.`);
  });
}

async function start() {
  wire();
  if (!session.get()) {
    showLogin();
    return;
  }
  // A reload keeps the session (sessionStorage); check that the server still knows it.
  try {
    await call("listZones", { pagesize: 1, page: 1 });
    showSignedIn();
  } catch (error) {
    if (session.get()) {
      showSignedIn();
      showError(error);
    }
  }
}

start();
