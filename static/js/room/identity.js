// Who I am in this room, kept in localStorage so a reload or reconnect is the same person.

const memory = new Map();

function read(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    // Storage can be blocked (private mode, strict settings); keep it for this page only.
    return memory.get(key) ?? null;
  }
}

function write(key, value) {
  try {
    if (value === null) localStorage.removeItem(key);
    else localStorage.setItem(key, value);
  } catch {
    if (value === null) memory.delete(key);
    else memory.set(key, value);
  }
}

const LAST_NAME_KEY = "stackvote:last-name";

export class Identity {
  constructor(sessionId) {
    this.meKey = `stackvote:${sessionId}:me`;
    this.facilitatorKey = `stackvote:${sessionId}:facilitator`;
  }

  /** {name, token} from an earlier visit, or null. */
  loadMe() {
    try {
      const value = JSON.parse(read(this.meKey) || "null");
      if (value && typeof value === "object" && typeof value.name === "string") return value;
    } catch {
      // A damaged entry is the same as none.
    }
    return null;
  }

  saveMe(me) {
    write(this.meKey, JSON.stringify(me));
    // Offered as the default name in the next session on this device.
    write(LAST_NAME_KEY, me.name);
  }

  get lastName() {
    return read(LAST_NAME_KEY) || "";
  }

  forgetMe() {
    write(this.meKey, null);
  }

  get facilitatorToken() {
    return read(this.facilitatorKey);
  }

  set facilitatorToken(token) {
    write(this.facilitatorKey, token || null);
  }

  /**
   * A facilitator link carries its token in the fragment (#f=...). Keep the token and take it
   * out of the address bar, so it isn't shared by accident along with the page.
   */
  adoptFragment() {
    const match = /^#f=([^&]+)/.exec(location.hash);
    if (!match) return;
    this.facilitatorToken = decodeURIComponent(match[1]);
    history.replaceState(history.state, "", location.pathname + location.search);
  }
}
