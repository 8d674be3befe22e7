import { ideatorMachine } from "./ideator.js";
import { criticMachine } from "./critic.js";
import { coderMachine } from "./coder.js";
import { sectionMachine, writerMachine } from "./writer.js";
import { reviewerMachine } from "./reviewer.js";
import { areaChairMachine } from "./areaChair.js";
import { ideaMachine } from "./idea.js";
import { pipelineMachine } from "./pipeline.js";
import { treeMachine } from "./tree.js";
import { variantMachine } from "./variant.js";
import { scaffoldMachine } from "./scaffold.js";
import { figureCriticMachine } from "./figureCritic.js";

export { ideatorMachine, criticMachine, coderMachine, variantMachine, scaffoldMachine, figureCriticMachine, writerMachine, sectionMachine, reviewerMachine, areaChairMachine, ideaMachine, treeMachine, pipelineMachine };

/**
 * Every statechart, by name: the agents (the writer's sections, a tree search's nodes and a topic run's template each a machine of their own), then the pipeline between them (one idea's way from experiment to
 * decision, and the run that spawns the ideas). What `npm run graph` draws and the path tests walk.
 */
export const machines = {
  ideator: ideatorMachine,
  critic: criticMachine,
  coder: coderMachine,
  variant: variantMachine,
  figureCritic: figureCriticMachine,
  /** A run from a topic: the coder writes its template first. */
  scaffold: scaffoldMachine,
  writer: writerMachine,
  section: sectionMachine,
  reviewer: reviewerMachine,
  areaChair: areaChairMachine,
  idea: ideaMachine,
  tree: treeMachine,
  pipeline: pipelineMachine,
} as const;

export type Role = keyof typeof machines;
