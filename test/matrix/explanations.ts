/** Why a cell does not hold, by `mode/victim/moment`, when the reason is understood (shown in docs/fault-matrix.md). */
export const EXPLANATIONS: Record<string, string> = {};
