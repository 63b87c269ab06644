// MongoDB's users, one per database: the mongo image's entrypoint runs this once, on an
// empty data folder, after it made the root user (MONGO_INITDB_ROOT_USERNAME and _PASSWORD)
// and before MongoDB starts with --auth. Each MONGO_PASSWORD_<NAME> variable of the
// container makes the user <name> (lower case, `-` for `_`: MONGO_PASSWORD_RECOMMEND_V1 is
// recommend-v1) in the database <name>, who may read and write that database and nothing
// else; a process logs in with it from its MONGO_URL
// (mongodb://recommend-v1:PASSWORD@mongo:27017/recommend-v1?authSource=recommend-v1).
// docker/README.md says who is who.
const PREFIX = "MONGO_PASSWORD_";
const variables = Object.keys(process.env)
  .filter((name) => name.startsWith(PREFIX))
  .sort();
if (variables.length === 0) {
  throw new Error(`mongo-users: no ${PREFIX}<DATABASE> variable, so no process could log in`);
}
for (const variable of variables) {
  const name = variable.slice(PREFIX.length).toLowerCase().replaceAll("_", "-");
  const password = process.env[variable];
  if (!/^[A-Za-z0-9_-]+$/.test(password)) {
    throw new Error(`mongo-users: ${variable} must be letters, digits, - and _ (it goes into a URL)`);
  }
  db.getSiblingDB(name).createUser({
    user: name,
    pwd: password,
    roles: [{ role: "readWrite", db: name }],
  });
  print(`mongo-users: ${name} may read and write the database ${name}, and nothing else`);
}
