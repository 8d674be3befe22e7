import { fromCallback, fromPromise, type CallbackActorLogic, type EventObject, type PromiseActorLogic } from "xstate";

/**
 * Declares a promise actor by its input and output types only. Machines stay pure: the work is supplied by
 * the agent with `machine.provide({ actors: { name: fromPromise(...) } })`, and running a machine whose
 * actor nobody provided fails loudly instead of doing nothing.
 */
export function declared<TOutput, TInput>(name: string): PromiseActorLogic<TOutput, TInput> {
  return fromPromise<TOutput, TInput>(async () => {
    throw new Error(`actor "${name}" was not provided: the agent must supply it with machine.provide()`);
  });
}

/** Declares a callback actor that sends the machine events of type `TEvent`; supplied by the agent. */
export function declaredCallback<TEvent extends EventObject, TInput = void>(name: string): CallbackActorLogic<TEvent, TInput> {
  return fromCallback<TEvent, TInput>(() => {
    throw new Error(`actor "${name}" was not provided: the agent must supply it with machine.provide()`);
  });
}
