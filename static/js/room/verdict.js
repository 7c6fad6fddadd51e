// The verdict in the reader's language, told from its parts (recommendation.verdict_parts);
// the server's `verdict` is the English sentence made from the same parts, and is said only
// when a recommendation carries no parts (an older server).

import { t } from "../i18n.js";
import { listNames } from "./dom.js";

/**
 * "Consider Node.js instead of Django: "Live updates are core"." from the parts, with the
 * question titles and stack names of this page (`titleOf`, `nameOf`: id -> words).
 */
export function verdictSentence(recommendation, titleOf, nameOf) {
  const parts = recommendation?.verdict_parts;
  if (!parts) return recommendation?.verdict ?? "";
  const stack = nameOf(parts.stack);
  if (parts.kind === "none") return t("No revealed question favours any stack yet.");
  if (parts.kind === "tied") {
    const level = [parts.stack, ...(parts.tied_with || [])].map(nameOf);
    return t("{stacks} score the same: the team's scores cannot separate them yet.", {
      stacks: listNames(level, Infinity),
    });
  }
  if (parts.kind === "django") return t("{stack} fits this project.", { stack });
  const [first, second] = (parts.reasons || []).map(titleOf);
  if (parts.favourite == null) {
    if (second) return t('{stack} fits this project best: "{first}" and "{second}".', { stack, first, second });
    if (first) return t('{stack} fits this project best: "{first}".', { stack, first });
    return t("{stack} fits this project best.", { stack });
  }
  const favourite = nameOf(parts.favourite);
  if (second) {
    return t('Consider {stack} instead of {favourite}: "{first}" and "{second}".', { stack, favourite, first, second });
  }
  if (first) return t('Consider {stack} instead of {favourite}: "{first}".', { stack, favourite, first });
  return t("Consider {stack} instead of {favourite}.", { stack, favourite });
}
