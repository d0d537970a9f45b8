import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', 'data/**', '.tap/**', 'bench/results/**', 'proto/src/generated/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      eqeqeq: ['error', 'always'],
      'no-console': 'off',
    },
  },
  // The gateway and the wallet share only @phia/proto: neither imports the other's source (tests that
  // need both live in test/).
  {
    files: ['gateway/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/wallet-service/**', '@phia/wallet-service', '@phia/wallet-service/**'],
              message: 'the gateway talks to the wallet over gRPC only; whole-stack tests go in test/',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['wallet-service/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/gateway/**', '@phia/gateway', '@phia/gateway/**'],
              message: 'the wallet knows nothing of the gateway; whole-stack tests go in test/',
            },
          ],
        },
      ],
    },
  },
);
