// Svelte compiles TypeScript in <script lang="ts"> natively; no preprocessor needed.
export default {};
