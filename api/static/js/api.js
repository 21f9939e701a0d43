/**
 * The console's API client: CloudStack commands sent by POST to this server's /client/api with
 * the login session (the JSESSIONID cookie, sent by the browser, plus the session key, which the
 * console keeps in sessionStorage and never puts in a URL). Every failure becomes an ApiError
 * whose message says in words what went wrong, taken from CloudStack's error envelope.
 */

const SESSION = "motion.session";
const ENDPOINT = "/client/api";
const LIST_PAGE = 500; // the API's largest page

/** An API refusal or an unreachable server, with the command and the server's own words. */
export class ApiError extends Error {
  constructor(command, code, text) {
    super(code ? `${command} failed: ${text} (error ${code})` : `${command} failed: ${text}`);
    this.command = command;
    this.code = code;
    this.text = text;
  }
}

/** The login session of this browser tab: {sessionkey, username, type}, or null. */
export const session = {
  get() {
    try {
      return JSON.parse(sessionStorage.getItem(SESSION));
    } catch {
      return null;
    }
  },
  set(value) {
    sessionStorage.setItem(SESSION, JSON.stringify(value));
  },
  clear() {
    sessionStorage.removeItem(SESSION);
  },
};

let onSessionLost = () => {};

/** Called with an ApiError when the server refuses the session (401): it ended or expired. */
export function whenSessionLost(handler) {
  onSessionLost = handler;
}

/**
 * Run one command; resolves to the body of its "<command>response" object. Empty and undefined
 * parameters are left out. Rejects with an ApiError.
 */
export async function call(command, params = {}) {
  const body = new URLSearchParams({ command, response: "json" });
  const current = session.get();
  if (current && command !== "login") body.set("sessionkey", current.sessionkey);
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") body.set(name, String(value));
  }
  let response;
  try {
    response = await fetch(ENDPOINT, {
      method: "POST", body, credentials: "same-origin", headers: { Accept: "application/json" },
    });
  } catch (error) {
    throw new ApiError(command, 0, `the server could not be reached (${error.message})`);
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null; // said below, with the HTTP status
  }
  if (!response.ok) {
    const inner = data && typeof data === "object" ? Object.values(data)[0] : null;
    const text = inner && inner.errortext
      ? inner.errortext : `the server answered HTTP ${response.status} ${response.statusText}`;
    const error = new ApiError(command, response.status, text);
    if (response.status === 401 && command !== "login" && command !== "logout") onSessionLost(error);
    throw error;
  }
  if (!data || typeof data !== "object") {
    throw new ApiError(command, response.status, "the server's answer was not JSON");
  }
  return data[`${command.toLowerCase()}response`] || {};
}

/** Every object of a list command, page after page. */
export async function fetchAll(command, key, params = {}) {
  const all = [];
  for (let page = 1; ; page += 1) {
    const body = await call(command, { ...params, page, pagesize: LIST_PAGE });
    const items = body[key] || [];
    all.push(...items);
    if (!items.length || all.length >= (body.count || 0)) return all;
  }
}

/**
 * The newest `count` objects of a list the API answers oldest first (listAsyncJobs), newest
 * first, and the total.
 */
export async function latest(command, key, count, params = {}) {
  const first = await call(command, { ...params, page: 1, pagesize: count });
  const total = first.count || 0;
  let items = first[key] || [];
  if (total > count) {
    const last = Math.ceil(total / count);
    const pages = await Promise.all([last - 1, last].map(
      (page) => call(command, { ...params, page, pagesize: count })));
    items = pages.flatMap((body) => body[key] || []).slice(-count);
  }
  return { total, items: items.slice().reverse() };
}
