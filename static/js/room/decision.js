// The team's decision (session.decision): its words for the room and the presenter view, and
// the facilitator's form that records it. The recommendation is advice; this is what was chosen.

import { locale, t } from "../i18n.js";
import { el, setHidden, setText } from "./dom.js";

/** The stack the scores recommend now, or null. */
export function recommendedStack(recommendation) {
  return recommendation?.ranking?.[0]?.stack ?? null;
}

/** The chosen option's name: a stack of the template, else "something else". */
function chosenName(decision, stackNames) {
  if (decision.stack === null) return t("something else");
  return stackNames.get(decision.stack) ?? decision.stack;
}

/** The chosen option on its own, as a headline: "Go", "Something else". */
export function decisionHeadline(decision, stackNames) {
  if (decision.stack === null) return t("Something else");
  return stackNames.get(decision.stack) ?? decision.stack;
}

/** "The team decided: Go", the option in `<strong>` (as nodes; text never becomes markup). */
export function decisionLead(decision, stackNames) {
  const [before, after] = t("The team decided: {stack}").split("{stack}");
  return [before, el("strong", { text: chosenName(decision, stackNames) }), after ?? ""];
}

/** The same as one line of text, for the sticky bar and screen readers. */
export function decisionText(decision, stackNames) {
  return t("The team decided: {stack}", { stack: chosenName(decision, stackNames) });
}

/** Said plainly when the team chose other than the scores' top pick; else "". */
export function differsText(decision, recommendation) {
  const top = recommendation?.ranking?.[0];
  if (!top || top.stack === decision.stack) return "";
  return t("The scores recommended {stack}; the team chose differently.", { stack: top.name });
}

/** "Recorded by Fay, 5 Dec 2026, 14:03." */
export function recordedText(decision) {
  const when = new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "short" });
  return t("Recorded by {name}, {when}.", {
    name: decision.by,
    when: when.format(new Date(decision.at * 1000)),
  });
}

/** The news between two snapshots: a decision recorded or changed ("" if none). */
export function decisionNews(before, after, stackNames) {
  const decision = after.session.decision;
  if (!decision || decision.at === before.session.decision?.at) return "";
  return decisionText(decision, stackNames);
}

/**
 * The room's decision panel: everyone sees the decision once made; a facilitator gets the form
 * once a question has been revealed (or the session is over). What the facilitator is typing
 * stays put while snapshots come in; otherwise the form shows the current decision, or the
 * recommended option while there is none.
 */
export class DecisionPanel {
  constructor(root, stackNames) {
    this.root = root;
    this.stackNames = stackNames;
    const part = (name) => root.querySelector(`[data-role="${name}"]`);
    this.shown = part("shown");
    this.what = part("what");
    this.differs = part("differs");
    this.note = part("note");
    this.by = part("by");
    this.none = part("none");
    this.form = part("form");
    this.formTitle = part("form-title");
    this.stack = part("stack");
    this.noteInput = part("note-input");
    this.count = part("count");
    this.error = part("error");
    this.submit = part("submit");
    this.options = [...this.stack.options];
    this.names = new Map(this.options.map((o) => [o.value, o.textContent]));
    this.applied = null; // what the form was last filled from
    this.dirty = false; // the facilitator changed the form since
    this.form.addEventListener("input", () => {
      this.dirty = true;
      this.countNote();
    });
    this.countNote();
  }

  /** The form's choice as the command's payload. */
  value() {
    return { stack: this.stack.value || null, note: this.noteInput.value };
  }

  /** Saved: the next snapshot fills the form with what the server kept. */
  saved() {
    this.dirty = false;
    this.applied = null;
    this.showError("");
  }

  showError(message) {
    setText(this.error, message);
  }

  countNote() {
    const max = this.noteInput.maxLength;
    setText(this.count, t("{n} of {max} characters", { n: this.noteInput.value.length, max }));
  }

  render(snapshot, view) {
    const decision = snapshot.session.decision ?? null;
    const finished = snapshot.session.status === "finished";
    const revealed = snapshot.cases.some(
      (c) => (c.status === "revealed" || c.status === "locked") && !c.withheld,
    );
    const deciding = view.facilitator && (revealed || finished);
    setHidden(this.root, !decision && !deciding);
    setHidden(this.shown, !decision);
    setHidden(this.none, Boolean(decision) || !deciding);
    setHidden(this.form, !deciding);
    if (decision) this.renderDecision(decision, snapshot.recommendation);
    if (deciding) this.renderForm(decision, snapshot.recommendation, view.offline);
  }

  renderDecision(decision, recommendation) {
    const key = JSON.stringify(decision);
    if (this.what.dataset.key !== key) {
      this.what.dataset.key = key;
      this.what.replaceChildren(...decisionLead(decision, this.stackNames));
      setText(this.note, decision.note);
      setHidden(this.note, !decision.note);
      setText(this.by, recordedText(decision));
    }
    const differs = differsText(decision, recommendation);
    setText(this.differs, differs);
    setHidden(this.differs, !differs);
  }

  renderForm(decision, recommendation, offline) {
    setText(this.formTitle, decision ? t("Change the decision") : t("Record the decision"));
    const recommended = recommendedStack(recommendation);
    for (const option of this.options) {
      const name = this.names.get(option.value);
      setText(
        option,
        option.value && option.value === recommended ? t("{stack} (recommended)", { stack: name }) : name,
      );
    }
    const key = decision ? `decision:${decision.at}` : `recommended:${recommended}`;
    if (!this.dirty && this.applied !== key) {
      this.applied = key;
      const wanted = decision ? (decision.stack ?? "") : (recommended ?? this.options[0].value);
      this.stack.value = this.names.has(wanted) ? wanted : this.options[0].value;
      this.noteInput.value = decision ? decision.note : "";
      this.countNote();
    }
    this.submit.setAttribute("aria-disabled", String(offline));
  }
}
