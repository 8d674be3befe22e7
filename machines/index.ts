import { ideatorMachine } from "./ideator.js";
import { criticMachine } from "./critic.js";
import { coderMachine } from "./coder.js";
import { writerMachine } from "./writer.js";
import { reviewerMachine } from "./reviewer.js";
import { areaChairMachine } from "./areaChair.js";

export { ideatorMachine, criticMachine, coderMachine, writerMachine, reviewerMachine, areaChairMachine };

/** Every agent's statechart, by role name: what `npm run graph` draws and the path tests walk. */
export const machines = {
  ideator: ideatorMachine,
  critic: criticMachine,
  coder: coderMachine,
  writer: writerMachine,
  reviewer: reviewerMachine,
  areaChair: areaChairMachine,
} as const;

export type Role = keyof typeof machines;
