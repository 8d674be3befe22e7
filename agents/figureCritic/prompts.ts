import { z } from "zod";
import { FIGURE_PROBLEMS, FigureProblem } from "../../bus/schemas.js";
import { defineTask } from "../llm/task.js";

/** One figure shown to a model that sees images: the image goes with the request, the rest as data. */
export const lookAtFigure = defineTask({
  name: "figureCritic.look",
  data: z.object({
    figure: z.string(),
    caption: z.string(),
    /** The sentences of the notes or the paper that refer to the figure. */
    references: z.array(z.string()),
    /** The runs of the experiment: which have results (`ok`), and what each changed. */
    plottedRuns: z.array(z.object({ run: z.string(), description: z.string(), ok: z.boolean() })),
    /** What the pixel check found already. */
    pixelCheck: z.array(FigureProblem),
  }),
  answer: z.object({ shows: z.string().min(1), problems: z.array(FigureProblem) }),
  system: "You are a careful reviewer of the figures in an ML paper. You say only what you can see in the image.",
  instructions: (d) =>
    [
      `The attached image is the figure ${d.figure}. Say in \`shows\` what it actually shows: the kind of plot, the axes and their labels, the series in its legend, and the trend a reader would take from it, in two or three sentences.`,
      "Then list its `problems`, each with a kind and a specific detail: no-legend (several series and no legend, or a legend that does not say which run is which), unreadable-axes (an axis without a label, or labels and ticks too small to read), caption-claims (`caption` or `references` say something the figure does not show), missing-data (a run that `caption` names, or a run of `plottedRuns` with results, is not in it), blank (nothing is plotted), too-small, other.",
      `Kinds are ${FIGURE_PROBLEMS.join(", ")}. \`pixelCheck\` is what an automatic check found; repeat none of it unless you see more. An empty list means the figure is fine as it is.`,
    ].join(" "),
  shape: `{"shows": "what the figure shows", "problems": [{"kind": "no-legend", "detail": "..."}]}`,
});
