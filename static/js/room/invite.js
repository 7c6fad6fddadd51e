// "Copy link" buttons: the clipboard API where allowed, else select the text for Ctrl+C.

import { t } from "../i18n.js";

const RESET_AFTER_MS = 2000;

async function copy(input) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(input.value);
      return true;
    } catch {
      // Permission denied or unfocused document: fall through to selecting the text.
    }
  }
  input.focus();
  input.select();
  try {
    // Deprecated, but the only option on plain-http hosts where the clipboard API is absent.
    return document.execCommand("copy");
  } catch {
    return false;
  }
}

/** Wire every button with data-copy-from="<input id>"; `announce` reports the result. */
export function setUpCopyButtons(root, announce) {
  for (const button of root.querySelectorAll("button[data-copy-from]")) {
    const input = document.getElementById(button.dataset.copyFrom);
    const label = button.textContent;
    let timer = 0;
    input.addEventListener("focus", () => input.select());
    button.addEventListener("click", async () => {
      const copied = await copy(input);
      clearTimeout(timer);
      if (copied) {
        button.textContent = t("Copied");
        button.dataset.copied = "true";
        announce(t("Link copied to the clipboard."));
      } else {
        input.focus();
        input.select();
        announce(t("Press Ctrl+C (or ⌘C) to copy the selected link."));
      }
      timer = setTimeout(() => {
        button.textContent = label;
        delete button.dataset.copied;
      }, RESET_AFTER_MS);
    });
  }
}
