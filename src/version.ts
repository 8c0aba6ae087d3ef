/** Ferry's version, shown by `ferry --version` and sent in `connect.hello`. */
export const FERRY_VERSION = '0.1.0';
