

export default {
  input: '../../docs/openapi.json',
  output: {
    path: process.env.CLIENT_OUTPUT ?? 'src/gen',
    importFileExtension: '.js',
    tsConfigPath: null,
  },
  plugins: ['@hey-api/client-fetch', '@hey-api/typescript', '@hey-api/sdk'],
};
