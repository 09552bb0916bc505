import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'src/graphql/__generated__/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  // import-x's TypeScript preset resolves our `./x.js` specifiers to `./x.ts`, so no-cycle sees the real graph
  importX.flatConfigs.typescript,
  {
    files: ['**/*.ts'],
    rules: {
      // Dependencies point one way (resolvers -> loaders/domain -> db); a cycle means a layer leaked.
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // Nothing in src may import from test/.
    files: ['src/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: ['**/test/**'] }] },
  },
  {
    // The request path never reaches into the tools (CLIs, load scenarios, seeds, db:plans); only the
    // process's entry point (the first-start seed) and the tools themselves may.
    files: ['src/**/*.ts'],
    ignores: ['src/tools/**', 'src/main.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: ['**/test/**', '**/tools/**'] }] },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
);
