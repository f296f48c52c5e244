/** The build's record, relative to the repository root. */
export const BUILD_STAMP: string;
/** The TypeScript files the build compiles (src/ but its tests), as absolute paths. */
export function sourceFiles(root: URL): string[];
/** The built CLI's entry under `root` if the build there is current, else undefined. */
export function compiledEntry(root: URL): URL | undefined;
