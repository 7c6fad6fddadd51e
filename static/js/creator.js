// After creating a session: the creator goes straight into the room as its facilitator, under
// the name they gave, and the session joins this browser's list of sessions.

import { rememberSession } from "/static/js/recent.js";
import { Identity } from "/static/js/room/identity.js";

export const NAME_MAX = 40;

/** The name last used on this device, to fill in a name field. */
export function lastName() {
  return new Identity("").lastName;
}

export function enterRoom(created, title, name) {
  if (name) new Identity(created.id).saveMe({ name, role: "voter" });
  rememberSession({ id: created.id, title, role: "facilitator" });
  location.assign(created.facilitator_url);
}
