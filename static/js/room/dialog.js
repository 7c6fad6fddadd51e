// One confirmation dialog for the room's irreversible actions (remove, hand over, leave).

import { setHidden, setText } from "./dom.js";

export class Confirm {
  constructor(dialog) {
    this.dialog = dialog;
    this.title = dialog.querySelector("#confirm-title");
    this.text = dialog.querySelector("#confirm-text");
    this.choice = dialog.querySelector("#confirm-choice");
    this.check = dialog.querySelector("#confirm-check");
    this.checkLabel = dialog.querySelector("#confirm-check-label");
    this.ok = dialog.querySelector("#confirm-ok");
  }

  /**
   * Ask; resolves to null when cancelled, else {checked}. `check` ({label, checked}) adds a
   * checkbox. Focus returns to what had it before.
   */
  ask({ title, text, confirm, check = null, danger = false }) {
    const back = document.activeElement;
    setText(this.title, title);
    setText(this.text, text);
    setText(this.ok, confirm);
    this.ok.classList.toggle("button--danger", danger);
    this.ok.classList.toggle("button--primary", !danger);
    setHidden(this.choice, !check);
    if (check) {
      setText(this.checkLabel, check.label);
      this.check.checked = Boolean(check.checked);
    }
    this.dialog.returnValue = "";
    this.dialog.showModal();
    return new Promise((resolve) => {
      this.dialog.addEventListener(
        "close",
        () => {
          if (back && typeof back.focus === "function" && back.isConnected) back.focus();
          resolve(this.dialog.returnValue === "ok" ? { checked: this.check.checked } : null);
        },
        { once: true },
      );
    });
  }
}
