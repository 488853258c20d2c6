mod archive;
mod delete;
mod query;
mod reliability;
