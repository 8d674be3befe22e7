import { execa } from "execa";

export interface GpuInfo {
  index: number;
  name: string;
  memoryMb: number;
  /** Advertised by SWARM_SIMULATE_GPUS for tests, not found on the machine. */
  simulated: boolean;
}

/**
 * The GPUs this node can run jobs on: what nvidia-smi lists, or SWARM_SIMULATE_GPUS=<n> pretend ones (for tests
 * of routing on machines without a GPU). No nvidia-smi means no GPU.
 */
export async function detectGpus(env: NodeJS.ProcessEnv = process.env): Promise<GpuInfo[]> {
  const simulated = Number(env.SWARM_SIMULATE_GPUS ?? 0);
  if (simulated > 0) {
    return Array.from({ length: simulated }, (_, index) => ({ index, name: "simulated GPU", memoryMb: 0, simulated: true }));
  }
  const res = await execa("nvidia-smi", ["--query-gpu=index,name,memory.total", "--format=csv,noheader,nounits"], { reject: false, timeout: 10_000 });
  if (res.exitCode !== 0 || typeof res.stdout !== "string") return [];
  return res.stdout
    .split("\n")
    .map((line) => line.split(",").map((x) => x.trim()))
    .filter((f) => f.length >= 3 && /^\d+$/.test(f[0]!))
    .map(([index, name, mem]) => ({ index: Number(index), name: name!, memoryMb: Number(mem), simulated: false }));
}
