mod archive;
mod query;
mod reliability;
