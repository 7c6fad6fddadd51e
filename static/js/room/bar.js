// The sticky bar at the top of the room (where the session stands, wherever one has scrolled
// to) and the waiting panel shown while no question is open.

import { t, tn } from "../i18n.js";
import { listNames, setHidden, setText } from "./dom.js";
import { here, tally } from "./quorum.js";

const EVENT_MS = 10000;

/** "1:05", "0:09": what is left until `deadline` (epoch seconds). */
export function formatLeft(deadline, now = Date.now() / 1000) {
  const left = Math.max(0, Math.ceil(deadline - now));
  return `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
}

export class RoomBar {
  constructor(dom) {
    this.dom = dom;
    this.eventTimer = 0;
  }

  /** Show a change for a while (with a link to the question it concerns). */
  showEvent(event, titleOf) {
    const link = this.dom.barEvent;
    clearTimeout(this.eventTimer);
    setText(link, event.caseId ? t("Show") : "");
    link.setAttribute("aria-label", event.caseId ? t("Show “{title}”", { title: titleOf(event.caseId) }) : "");
    link.href = event.caseId ? `#case-${event.caseId}` : "#recommendation";
    link.dataset.focusCase = event.caseId || "";
    setHidden(link, !event.caseId);
    this.dom.bar.dataset.event = "true";
    this.event = event.text;
    this.eventTimer = setTimeout(() => {
      this.event = "";
      delete this.dom.bar.dataset.event;
      setHidden(link, true);
      this.render(this.last.snapshot, this.last.view);
    }, EVENT_MS);
  }

  render(snapshot, view) {
    this.last = { snapshot, view };
    const { dom } = this;
    setHidden(dom.bar, !view.joined);
    // Connected right now, as the people list counts them ("here" is who the room waits for,
    // which includes someone whose connection just blinked).
    const online = snapshot.participants.filter((p) => p.online).length;
    setText(dom.barPeople, t("{count} online", { count: online }));
    const finished = snapshot.session.status === "finished";
    setHidden(dom.barVerdict, !(snapshot.recommendation && (finished || !open(snapshot).length)));
    setText(dom.barStatus, this.event || statusLine(snapshot, view));
  }
}

function open(snapshot) {
  return snapshot.cases.filter((c) => c.status === "voting");
}

/** Who facilitates, by name ("you" for oneself; co-facilitators listed together). */
function facilitatorName(snapshot, view) {
  const names = snapshot.participants
    .filter((p) => p.role === "facilitator")
    .map((f) => (f.id === view.me ? t("you") : f.name));
  return names.length ? listNames(names) : "";
}

/** One line saying where the session stands, for this person. */
export function statusLine(snapshot, view) {
  if (snapshot.session.status === "finished") {
    // Once the team has decided, that is the outcome; the recommendation was advice.
    if (view.decided) return t("Finished. {verdict}", { verdict: view.decided });
    return snapshot.recommendation
      ? t("Finished. {verdict}", { verdict: view.verdict })
      : t("Finished.");
  }
  const voting = open(snapshot);
  const anonymous = snapshot.session.anonymous;
  // Closed without results (too few scores in an anonymous session) is not revealed.
  const shown = snapshot.cases.filter(
    (c) => (c.status === "revealed" || c.status === "locked") && !c.withheld,
  );
  if (voting.length === 1) {
    const c = voting[0];
    const { voted, total } = tally(snapshot.participants, c, anonymous);
    let line = t("Voting on “{title}”: {voted} of {total} voted", {
      title: view.titleOf(c.id),
      voted,
      total,
    });
    if (c.deadline) line += " · " + t("closes in {left}", { left: formatLeft(c.deadline) });
    return line;
  }
  if (voting.length > 1) {
    if (view.voter) {
      const mine = voting.filter((c) => view.mine.has(c.id)).length;
      return t("{count} questions open: you've scored {mine} of them", {
        count: voting.length,
        mine,
      });
    }
    const done = voting.filter((c) => {
      const { voted, total } = tally(snapshot.participants, c, anonymous);
      return total > 0 && voted === total;
    }).length;
    return t("{count} questions open: everyone has voted on {done}", {
      count: voting.length,
      done,
    });
  }
  if (!snapshot.cases.some((c) => c.status === "pending")) {
    // Every question has been through a vote: what is left is the decision and finishing.
    if (view.facilitator) return t("Every question has been revealed. Record the decision or finish.");
    const who = facilitatorName(snapshot, view);
    return who
      ? t("Every question has been revealed. Waiting for {name} to finish.", { name: who })
      : t("Every question has been revealed.");
  }
  if (view.facilitator) {
    return shown.length
      ? t("{shown} of {count} questions revealed. Open the next one when you're ready.", {
          shown: shown.length,
          count: snapshot.cases.length,
        })
      : t("Nothing is open yet. Open a question when everyone is here.");
  }
  const who = facilitatorName(snapshot, view);
  return who
    ? t("Waiting for {name} to open the next question.", { name: who })
    : t("Waiting for the next question.");
}

/** The waiting panel: shown while nothing is open, so nobody wonders what to do. */
export function renderWaiting(dom, snapshot, view) {
  const finished = snapshot.session.status === "finished";
  const idle = view.joined && !finished && !open(snapshot).length;
  setHidden(dom.waiting, !idle);
  if (!idle) return;
  const started = snapshot.cases.some((c) => c.status !== "pending");
  const people = snapshot.participants.filter(here);
  const names = people.map((p) => (p.id === view.me ? t("you") : p.name));
  const who = tn("{count} person is here: {names}.", "{count} people are here: {names}.", people.length, {
    names: listNames(names),
  });
  const facilitator = facilitatorName(snapshot, view);
  if (!snapshot.cases.some((c) => c.status === "pending")) {
    // Every question has been revealed: what is left is the decision and finishing.
    setText(dom.waitingTitle, t("Every question has been revealed"));
    let next;
    if (view.facilitator) {
      next = t("Record what the team decided below, re-vote a question that needs it, or finish the session.");
    } else if (facilitator) {
      next = t("{name} may record the team's decision or finish the session.", { name: facilitator });
    } else {
      next = t("The facilitator may record the team's decision or finish the session.");
    }
    setText(dom.waitingText, `${next} ${who}`);
    return;
  }
  if (view.facilitator) {
    setText(dom.waitingTitle, started ? t("Ready for the next question?") : t("Everyone in?"));
    setText(
      dom.waitingText,
      who +
        " " +
        t(
          "Open a question below when you're ready, or open them all and let people score at their own pace.",
        ),
    );
    return;
  }
  setText(
    dom.waitingTitle,
    started ? t("Waiting for the next question") : t("Waiting for the first question"),
  );
  const lead = facilitator
    ? t("{name} will open the questions; they'll appear here as soon as they do.", {
        name: facilitator,
      })
    : t("The questions will appear here as soon as the facilitator opens them.");
  setText(dom.waitingText, `${lead} ${who}`);
}
