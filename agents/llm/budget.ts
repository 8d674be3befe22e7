import type { Bus } from "../../bus/connection.js";
import { BusError } from "../../bus/errors.js";
import { BudgetReachedError } from "./errors.js";
import { kvKeys } from "../../bus/subjects.js";

const spentKey = kvKeys.spent;

/** What a run has spent so far, in USD, as all its nodes record it in KV. */
export async function spentUsd(bus: Bus, runId: string): Promise<number> {
  const entry = await bus.kv.get(spentKey(runId));
  return entry && entry.operation === "PUT" ? Number(entry.string()) || 0 : 0;
}

/** Adds a call's cost to the run's total; concurrent writers from any node retry on a revision conflict. */
export async function addSpend(bus: Bus, runId: string, usd: number): Promise<number> {
  if (usd <= 0) return spentUsd(bus, runId);
  for (let attempt = 0; attempt < 50; attempt++) {
    const entry = await bus.kv.get(spentKey(runId));
    const current = entry && entry.operation === "PUT" ? Number(entry.string()) || 0 : 0;
    const next = current + usd;
    try {
      if (entry) await bus.kv.update(spentKey(runId), String(next), entry.revision);
      else await bus.kv.create(spentKey(runId), String(next));
      return next;
    } catch {
      // Another node wrote in between: read again.
    }
  }
  throw new BusError(`could not record spending for run ${runId}: too many concurrent updates`);
}

/** Refuses new paid work once the run has spent its budget. */
export async function assertWithinBudget(bus: Bus, runId: string, budgetUsd: number | undefined): Promise<void> {
  if (budgetUsd === undefined) return;
  const spent = await spentUsd(bus, runId);
  if (spent >= budgetUsd) {
    throw new BudgetReachedError(`budget reached: the run has spent $${spent.toFixed(4)} of its $${budgetUsd.toFixed(4)}; no new paid work starts`);
  }
}
