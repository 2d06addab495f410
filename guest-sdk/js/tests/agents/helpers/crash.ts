/** A sibling module of the errors agent: its frames show in the logged stack. */

interface Thing {
  name: string;
}

function nameOf(thing: Thing | null): string {
  return (thing as Thing).name.toUpperCase();
}

/** Throws a TypeError (reading a property of `null`) when `thing` is null. */
export function helper(thing: Thing | null): string {
  return nameOf(thing);
}
