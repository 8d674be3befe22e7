import { z } from "zod";
import { UserError } from "../../bus/errors.js";
import type { JobKind } from "../../bus/schemas.js";

/** Agent roles and the work queue each one serves. */
export const ROLE_QUEUES = {
  ideator: "ideate",
  critic: "novelty",
  coder: "experiment",
  writer: "write",
  areaChair: "chair",
  reviewer: "review",
  figureCritic: "figures",
} as const satisfies Record<string, JobKind>;
export type RoleName = keyof typeof ROLE_QUEUES;
export const ROLE_NAMES = Object.keys(ROLE_QUEUES) as RoleName[];

const RoleName = z.enum(ROLE_NAMES as [RoleName, ...RoleName[]]);
export type Roles = Partial<Record<RoleName, number>>;

/** `reviewer=2,coder` → { reviewer: 2, coder: 1 }. */
export function parseRoles(spec: string): Roles {
  const roles: Roles = {};
  for (const part of spec.split(/[,\s]+/).filter(Boolean)) {
    const [name, count] = part.split("=");
    const role = RoleName.safeParse(name);
    if (!role.success) throw new UserError(`unknown role "${name}"`, { hint: `roles are ${ROLE_NAMES.join(", ")}` });
    const n = count === undefined ? 1 : Number(count);
    if (!Number.isInteger(n) || n < 1 || n > 64) throw new UserError(`role ${name} needs a count from 1 to 64, not "${count}"`);
    roles[role.data] = n;
  }
  if (!Object.keys(roles).length) throw new UserError("no roles given", { hint: "for example --roles reviewer=2" });
  return roles;
}
