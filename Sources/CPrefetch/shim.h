// A cache prefetch hint, which Swift has no spelling for.
static inline void sluice_prefetch(const void *address) { __builtin_prefetch(address); }
