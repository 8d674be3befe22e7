import { OFFLINE_NOTE, respond } from "../llm/offline/registry.js";
import { lookAtFigure } from "./prompts.js";

// The offline stand-in sees no image: what it says a figure shows is its caption, and it adds no problem.
respond(lookAtFigure, (d) => ({
  shows: `${d.caption.trim() || `the figure ${d.figure}`} (as its caption says; ${OFFLINE_NOTE}, and no image was looked at)`,
  problems: [],
}));
