// Loaded data sets held as one JSON string per row. V8's major GC marks every live object on every cycle: the
// 33,500 conversations of the built-in model's run, each tens of small objects (ids, spans, grids, messages), made
// each mark-compact a ~170 ms pause on 2 busy cores, one or two a step (about 20% of the run). A string is one
// object the marker does not look into, so the same rows kept as JSON cost it next to nothing; a row is parsed
// again (tens of microseconds) when a batch takes it.

/**
 * A read-only array of `items` that keeps each as JSON and parses it on every read: indexing, length, iteration and
 * the array methods work as on the array. Items must be plain JSON data (no undefined inside arrays, no class
 * instances, no typed arrays). Writing to it throws: a change to a parsed row would be lost.
 */
export function packedArray<T>(items: readonly T[]): readonly T[] {
  const rows = items.map((x) => JSON.stringify(x));
  const index = (p: string | symbol): number => {
    if (typeof p !== 'string') return -1;
    const i = Number(p);
    return Number.isInteger(i) && i >= 0 && i < rows.length && String(i) === p ? i : -1;
  };
  const refuse = (): never => {
    throw new TypeError('a packed data set is read-only (a change to a row read from it would be lost)');
  };
  return new Proxy([] as T[], {
    get(target, p, receiver) {
      if (p === 'length') return rows.length;
      const i = index(p);
      if (i >= 0) return JSON.parse(rows[i]!) as T;
      return Reflect.get(target, p, receiver);
    },
    has(target, p) {
      return index(p) >= 0 || Reflect.has(target, p);
    },
    ownKeys() {
      return [...rows.keys()].map(String).concat('length');
    },
    getOwnPropertyDescriptor(target, p) {
      if (p === 'length') return { value: rows.length, writable: true, enumerable: false, configurable: false };
      const i = index(p);
      return i >= 0 ? { value: JSON.parse(rows[i]!) as T, writable: false, enumerable: true, configurable: true } : undefined;
    },
    set: refuse,
    deleteProperty: refuse,
    defineProperty: refuse,
  });
}
