// The room's header, presence list and recommendation panel.

import { t } from "../i18n.js";
import { el, formatNumber, formatSigned, listNames, setHidden, setText } from "./dom.js";
import { verdictSentence } from "./verdict.js";

const ROLE_WORDS = {
  facilitator: () => t("Facilitator"),
  voter: () => t("Voter"),
  spectator: () => t("Watching"),
};

export function renderHeader(dom, snapshot) {
  const session = snapshot.session;
  const finished = session.status === "finished";
  setText(dom.title, session.title);
  dom.status.dataset.status = session.status;
  setText(dom.status, finished ? t("Finished") : t("In progress"));
  // Say how scores are shown only while it still matters: once every question has been
  // revealed (or the session is over), "hidden until reveal" is no longer true.
  const stillHidden = snapshot.cases.some((c) => c.status === "pending" || c.status === "voting");
  const modeWords =
    session.mode === "open" ? t("Scores visible while voting") : t("Scores hidden until reveal");
  setHidden(dom.mode, finished || !stillHidden);
  setText(dom.mode, modeWords);
  setHidden(dom.anonymous, !session.anonymous);
  // Closed to newcomers: everyone sees it, and the invitation says who it still lets in.
  const closed = session.door_open === false && !finished;
  setHidden(dom.door, !closed);
  setHidden(dom.inviteDoor, !closed);
  setHidden(dom.finished, !finished);
}

/**
 * The people list. A facilitator gets buttons (`data-person-action`) for each other person:
 * "Make co-facilitator" and "Hand over" (or "Make voter" for a co-facilitator) and "Remove";
 * and "Step down" for themselves while someone else facilitates too. The room wires them. How many questions each has
 * scored only where the room is told who voted: never in an anonymous session.
 */
export function renderPresence(dom, snapshot, view) {
  const people = snapshot.participants;
  const caseCount = snapshot.cases.length;
  const anonymous = Boolean(snapshot.session.anonymous);
  const key = JSON.stringify([view.me, view.facilitator, view.offline, people, caseCount, anonymous]);
  if (dom.presence.dataset.key === key) return;
  dom.presence.dataset.key = key;

  const online = people.filter((p) => p.online).length;
  setText(dom.peopleCount, people.length ? t("{count} online", { count: online }) : "");
  setHidden(dom.presenceEmpty, people.length > 0);

  dom.presence.replaceChildren(
    ...people.map((p) => {
      const isMe = p.id === view.me;
      const role = ROLE_WORDS[p.role]?.() ?? p.role;
      const away = p.away && !p.online;
      const state = p.online ? t("online") : away ? t("away") : t("offline");
      const actions = [];
      // The visible words first, the person's name after them for screen readers: a
      // button's spoken name starts with what it shows (WCAG 2.5.3, label in name).
      const action = (name, text) =>
        el(
          "button",
          {
            class: "button button--small button--quiet",
            type: "button",
            dataset: { personAction: name, participant: p.id },
            "aria-disabled": view.offline ? "true" : null,
          },
          text,
          el("span", { class: "visually-hidden", text: ` (${p.name})` }),
        );
      const facilitators = people.filter((q) => q.role === "facilitator").length;
      if (view.facilitator && !isMe) {
        if (p.role === "facilitator") {
          actions.push(action("demote", t("Make voter")));
        } else {
          actions.push(action("promote", t("Make co-facilitator")));
          if (p.online) actions.push(action("hand_over", t("Hand over")));
        }
        actions.push(action("remove", t("Remove")));
      } else if (view.facilitator && isMe && facilitators > 1) {
        actions.push(action("demote", t("Step down")));
      }
      return el(
        "li",
        {
          class: "presence__item",
          dataset: { online: String(p.online), away: String(Boolean(away)), participant: p.id },
        },
        el("span", { class: "presence__dot", "aria-hidden": "true" }),
        el(
          "span",
          { class: "presence__name", title: p.name },
          p.name,
          isMe ? el("span", { class: "presence__you", text: " (" + t("you") + ")" }) : null,
          el("span", { class: "visually-hidden", text: `, ${state}` }),
        ),
        el("span", { class: `role role--${p.role}`, text: role }),
        away ? el("span", { class: "presence__away", "aria-hidden": "true", text: t("away") }) : null,
        p.role === "spectator" || anonymous
          ? el("span", { class: "presence__voted" })
          : el("span", {
              class: "presence__voted",
              text: t("{done} of {count} scored", { done: p.voted.length, count: caseCount }),
            }),
        actions.length ? el("span", { class: "presence__actions" }, actions) : null,
      );
    }),
  );
}

function caseLink(caseId, titleOf) {
  return el("a", {
    href: `#case-${caseId}`,
    dataset: { focusCase: caseId },
    text: titleOf(caseId),
  });
}

/** Position of a diverging bar for `score` on a scale from min (<= 0) to max (>= 0). */
function barGeometry(score, min, max) {
  const span = max - min || 1;
  const zero = (-min / span) * 100;
  const width = (Math.abs(score) / span) * 100;
  const left = score >= 0 ? zero : zero - width;
  return { zero, left, width };
}

/** A stack's score as a bar from the zero line, on a track from `min` (<= 0) to `max` (>= 0). */
export function scoreTrack(score, min, max) {
  const { zero, left, width } = barGeometry(score, min, max);
  const bar = el("span", { class: "ranking__bar", dataset: { sign: score < 0 ? "neg" : "pos" } });
  bar.style.left = `${left}%`;
  bar.style.width = `${width}%`;
  const zeroLine = el("span", { class: "ranking__zero" });
  zeroLine.style.left = `calc(${zero}% - 1px)`;
  return el("span", { class: "ranking__track", "aria-hidden": "true" }, zeroLine, bar);
}

/** 0.923 -> "92%" (or "92 %": the language decides). */
export function percent(share) {
  return t("{percent}%", { percent: Math.round((share ?? 0) * 100) });
}

/** "FastAPI would win if “Raw speed is critical” were 3 instead of 1." from a flip's parts. */
export function flipSentence(flip, titleOf, nameOf) {
  const changes = (flip.changes || []).map((c) =>
    t("“{question}” were {to} instead of {from}", {
      question: titleOf(c.case),
      to: formatNumber(c.to),
      from: formatNumber(c.from),
    }),
  );
  return t("{stack} would win if {changes}.", {
    stack: nameOf(flip.stack),
    changes: listNames(changes, Infinity),
  });
}

/** How sure the verdict is, in one sentence, from the resampled win shares. */
export function sureSentence(recommendation) {
  const top = recommendation.ranking?.[0];
  if (!top || top.win_share === undefined) return "";
  const values = { stack: top.name, share: percent(top.win_share) };
  switch (recommendation.confidence) {
    case "tied": {
      const level = [top, ...recommendation.ranking.filter((r) => top.tied_with?.includes(r.stack))];
      return t("A tie: {stacks} score the same, so they share first place; the tie rule lists {stack} first.", {
        stacks: listNames(level.map((r) => r.name), level.length),
        stack: top.name,
      });
    }
    case "too_few":
      // Two people who agree resample to "100 %" every time: no percentage until it means
      // something.
      return t("Too few scores to say how sure this is: the figures will mean something once at least 3 people have scored the revealed questions.");
    case "clear":
      return t("A clear result: with the team's scores resampled, {stack} comes first {share} of the time.", values);
    case "leaning":
      return t("Leaning towards {stack}: it comes first {share} of the time with the team's scores resampled.", values);
    default:
      return t("A toss-up: {stack} comes first only {share} of the time with the team's scores resampled.", values);
  }
}

/**
 * What would change the verdict: the runner-up's smallest flip; when the runner-up cannot come
 * first at all, say so and give the closest stack that can.
 */
function flipLine(recommendation, titleOf, nameOf) {
  if (recommendation.flip) return flipSentence(recommendation.flip, titleOf, nameOf);
  const [top, runnerUp, ...rest] = recommendation.ranking || [];
  if (!runnerUp) return "";
  if (top.tied_with?.length) {
    return t("The revealed questions weigh on them alike: only questions where they differ can separate them.");
  }
  if (runnerUp.can_win !== false) return "";
  // The other rows' flips are worked out when someone asks (askFlip); a record has them all.
  const closest = rest
    .filter((r) => r.flip)
    .sort((a, b) => (a.flip.steps ?? 0) - (b.flip.steps ?? 0))[0];
  const cannot = t("{stack} cannot come first, whatever the scores.", { stack: runnerUp.name });
  return closest ? cannot + " " + flipSentence(closest.flip, titleOf, nameOf) : cannot;
}

// Answers to "what would put it first?", by recommendation and stack: a re-render keeps them,
// and a new recommendation (whose flips may differ) starts afresh.
const asked = new Map();

/** What a flip answer says: the smallest change, that there is none, or that none was found. */
function flipAnswer(answer, titleOf, nameOf) {
  if (answer.flip) return flipSentence(answer.flip, titleOf, nameOf);
  if (answer.can_win === false) return t("It cannot come first, whatever the scores.");
  return t("It could come first, but no small change of the medians that shows it was found.");
}

/**
 * A button that asks the server what would put a stack first (the room is sent the
 * runner-up's flip only), and is replaced by the answer.
 */
function askButton(row, key, titleOf, nameOf, askFlip) {
  const button = el("button", {
    type: "button",
    class: "ranking__ask",
    text: t("What would put it first?"),
  });
  const out = el("span", { class: "ranking__flip", "aria-live": "polite" }, button);
  button.addEventListener("click", async () => {
    button.disabled = true;
    button.textContent = t("Working it out…");
    const answer = await askFlip(row.stack);
    if (!answer) {
      button.disabled = false;
      button.textContent = t("That could not be worked out just now. Try again?");
      return;
    }
    asked.set(key, answer);
    out.replaceChildren(flipAnswer(answer, titleOf, nameOf));
  });
  return out;
}

/**
 * The recommendation panel. `askFlip(stack)`: a promise of the server's answer to "what would
 * put this stack first?" ({flip, can_win}, or null when it could not say).
 */
export function renderRecommendation(dom, recommendation, titleOf, askFlip = null) {
  setHidden(dom.recommendation, !recommendation);
  if (!recommendation) return;
  const key = JSON.stringify(recommendation);
  if (dom.recommendation.dataset.key === key) return;
  dom.recommendation.dataset.key = key;
  for (const seen of asked.keys()) if (!seen.startsWith(key + "\n")) asked.delete(seen);

  const ranking = recommendation.ranking || [];
  const names = new Map(ranking.map((r) => [r.stack, r.name]));
  const nameOf = (id) => names.get(id) ?? id;
  setText(dom.verdict, verdictSentence(recommendation, titleOf, nameOf));
  setText(dom.sure, sureSentence(recommendation));
  dom.sure.dataset.confidence = recommendation.confidence || "";
  setText(dom.flip, flipLine(recommendation, titleOf, nameOf));
  setHidden(dom.flip, !dom.flip.textContent);

  dom.robust.dataset.robust = String(Boolean(recommendation.robust));
  const contested = recommendation.contested || [];
  dom.robust.dataset.contested = String(contested.length > 0);
  if (recommendation.robust && contested.length) {
    // Stable against one score moving, but built on scores people disagree about: say both.
    dom.robust.replaceChildren(
      t("Moving any one median by a step wouldn't change the top pick, but the team disagrees on some questions below."),
    );
  } else if (recommendation.robust) {
    dom.robust.replaceChildren(
      t("Holds up: moving any one question's median by a step doesn't change the top pick."),
    );
  } else if (recommendation.close_call) {
    const [before, after] = t("Close call: it depends on {question}.").split("{question}");
    dom.robust.replaceChildren(before, caseLink(recommendation.close_call, titleOf), after ?? "");
  } else {
    dom.robust.replaceChildren(
      t("Close call: a small change in one score could flip the top pick."),
    );
  }

  setHidden(dom.contested, contested.length === 0);
  dom.contestedList.replaceChildren(...contested.map((id) => el("li", {}, caseLink(id, titleOf))));

  // Keep open rows open across updates.
  const open = new Set(
    [...dom.ranking.querySelectorAll("details[open]")].map((d) => d.dataset.stack),
  );
  const scores = ranking.map((r) => r.score);
  const min = Math.min(0, ...scores);
  const max = Math.max(0, ...scores);
  // With too few scores the resampled shares and ranges mean nothing: none are shown.
  const few = recommendation.confidence === "too_few";

  dom.ranking.replaceChildren(
    ...ranking.map((row, index) => {
      const parts = (row.contributions || [])
        .filter((c) => c.value !== 0)
        .sort((a, b) => Math.abs(b.value) - Math.abs(a.value));
      const details = el(
        "details",
        { dataset: { stack: row.stack }, open: open.has(row.stack) },
        el(
          "summary",
          { class: "ranking__row" },
          el("span", { class: "ranking__rank", text: String(index + 1) }),
          el(
            "span",
            { class: "ranking__name" },
            el("span", { class: "ranking__label", text: row.name }),
            // Only stacks that come first in some resamples: a column of "0%" says nothing.
            !row.win_share || few
              ? null
              : el("span", { class: "ranking__share", text: ` ${percent(row.win_share)}` }),
          ),
          scoreTrack(row.score, min, max),
          el("span", { class: "ranking__score", text: formatSigned(row.score) }),
        ),
        odds(row, index, titleOf, nameOf, few, ranking[0]?.stack, {
          key: key + "\n" + row.stack,
          askFlip,
        }),
        el(
          "ul",
          {
            class: "contributions",
            "aria-label": t("Why {name} scores {score}", {
              name: row.name,
              score: formatSigned(row.score),
            }),
          },
          parts.length
            ? parts.map((c) =>
                el(
                  "li",
                  {},
                  el("span", {
                    class: "contributions__value",
                    dataset: { sign: c.value < 0 ? "neg" : "pos" },
                    text: formatSigned(c.value),
                  }),
                  " ",
                  caseLink(c.case, titleOf),
                ),
              )
            : el("li", { class: "muted", text: t("No revealed question moves this one yet.") }),
        ),
      );
      return el(
        "li",
        {
          class: index === 0 ? "ranking__item ranking__item--top" : "ranking__item",
          dataset: { stack: row.stack },
        },
        details,
      );
    }),
  );
}

/** A stack's chances: how often it comes first, its likely score, and what would make it win. */
function odds(row, index, titleOf, nameOf, few = false, top = null, ask = {}) {
  if (row.win_share === undefined) return null;
  const [lo, hi] = row.interval || [row.score, row.score];
  let flip = "";
  if (index === 0) flip = t("Recommended now.");
  else if (row.tied_with?.includes(top)) flip = t("Level with {stack}: the scores cannot separate them yet.", { stack: nameOf(top) });
  else if (row.flip) flip = flipSentence(row.flip, titleOf, nameOf);
  else if (row.can_win === false) flip = t("It cannot come first, whatever the scores.");
  else if (row.can_win == null && asked.has(ask.key)) flip = flipAnswer(asked.get(ask.key), titleOf, nameOf);
  else if (row.can_win == null && ask.askFlip) flip = askButton(row, ask.key, titleOf, nameOf, ask.askFlip);
  if (few) return flip ? el("p", { class: "ranking__odds", dataset: { stack: row.stack } }, flip) : null;
  return el(
    "p",
    { class: "ranking__odds", dataset: { stack: row.stack } },
    t("Comes first {share} of the time; its score lies between {lo} and {hi} in 90% of the resamples.", {
      share: percent(row.win_share),
      lo: formatSigned(lo),
      hi: formatSigned(hi),
    }),
    flip ? " " : "",
    flip || "",
  );
}
