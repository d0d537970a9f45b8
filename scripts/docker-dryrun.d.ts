/** Types of scripts/docker-dryrun.js, for the TypeScript tests that use its parser. */
export interface Instruction {
  keyword: string;
  args: string;
  flags: Record<string, string | true>;
  json: string[] | undefined;
  line: number;
}
export interface Stage {
  name: string;
  base: string;
  instructions: Instruction[];
  line: number;
}
export function parseDockerfile(text: string): Instruction[];
export function stagesOf(instructions: Instruction[]): Stage[];
export function parseEnv(args: string): Record<string, string>;
export function dockerignore(contextDir: string): (path: string) => boolean;
